// The execution devices the engine can use here: the CPU always, and each GPU provider ONNX Runtime offers.
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import type { DeviceInfo } from '../../../shared/api.js';
import type { ExecutionDevice } from '../../../shared/training.js';
import { chooseDevice, softwareWebgpu } from '../../engine/runtime/runtime.js';

const GPU_NAMES: Record<Exclude<ExecutionDevice, 'cpu'>, string> = {
  cuda: 'NVIDIA GPU (CUDA)',
  dml: 'GPU (DirectML)',
  webgpu: 'GPU (WebGPU)',
};
const SOFTWARE_WEBGPU = 'WebGPU in software, no GPU found (slower than the CPU)';

function available(device: ExecutionDevice): boolean {
  try {
    chooseDevice(device);
    return true;
  } catch {
    return false;
  }
}

let nvidiaAnswer: { name: string; memoryBytes: number } | null | undefined;

/** The first NVIDIA GPU's name and memory from nvidia-smi, when it answers; asked once (the memory plan asks often). */
function nvidiaGpu(): { name: string; memoryBytes: number } | null {
  if (nvidiaAnswer === undefined) nvidiaAnswer = queryNvidiaSmi();
  return nvidiaAnswer;
}

function queryNvidiaSmi(): { name: string; memoryBytes: number } | null {
  try {
    const line = execFileSync('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader,nounits'], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).split('\n')[0];
    const [name, mib] = line.split(',').map((s) => s.trim());
    return name && Number(mib) > 0 ? { name, memoryBytes: Number(mib) * 2 ** 20 } : null;
  } catch {
    return null;
  }
}

export function listDevices(): DeviceInfo[] {
  const preferred = chooseDevice('auto').device;
  const devices: DeviceInfo[] = [
    {
      device: 'cpu',
      name: os.cpus()[0]?.model.trim() || `${os.arch()} CPU`,
      memoryBytes: os.totalmem(),
      preferred: preferred === 'cpu',
    },
  ];
  for (const device of ['cuda', 'dml', 'webgpu'] as const) {
    if (!available(device)) continue;
    const nvidia = device === 'cuda' ? nvidiaGpu() : null;
    devices.push({
      device,
      // Never `auto`'s pick: said so by name, where the user chooses a device.
      name: nvidia?.name ?? (device === 'webgpu' && softwareWebgpu() ? SOFTWARE_WEBGPU : GPU_NAMES[device]),
      memoryBytes: nvidia?.memoryBytes ?? null,
      preferred: preferred === device,
    });
  }
  return devices;
}
