// The one place that talks to ONNX Runtime: execution-provider choice, session creation, checked runs.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import type { DeviceChoice, ExecutionDevice } from '../../../shared/training.js';
import { UserError } from '../../../shared/errors.js';

export type Tensor = ort.Tensor;
export const Tensor = ort.Tensor;
export type Session = ort.InferenceSession;

/** Session options per execution provider, frozen so no caller can drift from them. */
const PROVIDER_OPTIONS: Readonly<Record<ExecutionDevice, Readonly<ort.InferenceSession.SessionOptions>>> =
  Object.freeze({
    cpu: Object.freeze({ executionProviders: ['cpu'] }),
    // The default buffer cache keeps every size it ever saw; 'simple' returns freed buffers to reuse, bounding memory.
    webgpu: Object.freeze({
      executionProviders: [
        { name: 'webgpu', storageBufferCacheMode: 'simple' } as ort.InferenceSession.ExecutionProviderConfig,
      ],
    }),
    cuda: Object.freeze({ executionProviders: ['cuda'] }),
    dml: Object.freeze({ executionProviders: ['dml'] }),
  });

export interface SessionTuning {
  /** Threads of the session's intra-op pool (see engineThreads): always chosen, never left to ORT. */
  threads: number;
  /**
   * Pool threads busy-wait a moment after each operator for the next one; worth it only when no other pool wants the
   * cores meanwhile (off for a generation beside a training run).
   */
  spinning?: boolean;
  /** ORT's per-session CPU arena keeps its peak; off by default since we hold one session per layer. */
  cpuArena?: boolean;
  /** Let MLAS pre-pack constant weights (a second, packed copy); off unless the speed is worth the memory. */
  prepackWeights?: boolean;
}

const createdWith = new WeakMap<Session, Readonly<ort.InferenceSession.SessionOptions>>();

/** The options a session was created with, as handed to ONNX Runtime (for tests and diagnostics). */
export function sessionOptions(session: Session): Readonly<ort.InferenceSession.SessionOptions> | undefined {
  return createdWith.get(session);
}

/** The intra-op threads a session was created with: what the engine reports is read back, not assumed. */
export function sessionThreads(session: Session): number {
  const threads = createdWith.get(session)?.intraOpNumThreads;
  if (threads === undefined) throw new Error('a session not created by createSession');
  return threads;
}

/** Outputs that stay in device memory (WebGPU buffers) to be fed back as inputs; the rest come back to the CPU. */
export type DeviceResidentOutputs = readonly string[];

export async function createSession(
  modelFile: string,
  device: ExecutionDevice,
  tuning: SessionTuning,
  resident: DeviceResidentOutputs = [],
): Promise<Session> {
  const options: ort.InferenceSession.SessionOptions = {
    ...PROVIDER_OPTIONS[device],
    graphOptimizationLevel: 'all',
    // One operator at a time: an inter-op pool would only compete with the intra-op one for the same cores.
    executionMode: 'sequential',
    intraOpNumThreads: tuning.threads,
    interOpNumThreads: 1,
    enableCpuMemArena: tuning.cpuArena ?? false,
    enableMemPattern: tuning.cpuArena ?? false,
    logSeverityLevel: 3,
    extra: {
      session: {
        // MLAS pre-packs every constant weight into a second copy at load. On the SmolLM2-135M shape, turning it off
        // cut training's load-time RSS from 1.3 GB to 0.15 GB and made the step faster; one-token decoding gains
        // ~25% from it.
        disable_prepacking: tuning.prepackWeights ? '0' : '1',
        'intra_op.allow_spinning': tuning.spinning === false ? '0' : '1',
      },
    },
  };
  if (device === 'webgpu' && resident.length)
    options.preferredOutputLocation = Object.fromEntries(resident.map((name) => [name, 'gpu-buffer']));
  let session: Session;
  try {
    session = await ort.InferenceSession.create(modelFile, options);
  } catch (err) {
    // A GPU provider that cannot start (no adapter, driver too old) is the user's to act on, not a crash.
    if (device !== 'cpu') {
      const reason = (err as Error).message.split('\n')[0].replace(/^.*? was false\. /, ''); // drop ORT's source location
      throw new UserError(`${device} could not start (${reason}); choose cpu instead`, { field: 'device' });
    }
    throw err;
  }
  createdWith.set(session, Object.freeze(options));
  return session;
}

function describe(value: unknown): string {
  if (value instanceof ort.Tensor) return `${value.type}[${value.dims.join(',')}] on ${value.location}`;
  return typeof value;
}

/**
 * Runs a session after checking the feeds against its inputs; a mismatch lists what was fed. `fetches` names the
 * outputs to return, each null or a tensor for ONNX Runtime to write it into.
 */
export async function runChecked(
  session: Session,
  feeds: Record<string, Tensor>,
  label: string,
  fetches?: Record<string, Tensor | null>,
): Promise<Record<string, Tensor>> {
  const missing = session.inputNames.filter((name) => !(name in feeds));
  const extra = Object.keys(feeds).filter((name) => !session.inputNames.includes(name));
  if (missing.length || extra.length) {
    const fed = Object.entries(feeds)
      .map(([name, t]) => `${name}: ${describe(t)}`)
      .join('; ');
    throw new Error(`${label}: missing inputs [${missing}], unexpected inputs [${extra}]; fed ${fed}`);
  }
  try {
    return (await (fetches ? session.run(feeds, fetches) : session.run(feeds))) as Record<string, Tensor>;
  } catch (err) {
    const fed = Object.entries(feeds)
      .map(([name, t]) => `${name}: ${describe(t)}`)
      .join('; ');
    throw new Error(`${label}: ${(err as Error).message}; fed ${fed}`);
  }
}

function cudaProviderInstalled(): boolean {
  try {
    const ortDir = path.dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
    return fs.existsSync(
      path.join(ortDir, 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so'),
    );
  } catch {
    return false;
  }
}

/**
 * Whether WebGPU here can only be a software rasterizer. On Linux it goes through Vulkan, and Mesa installs driver
 * manifests for every GPU family whether or not one is present; a GPU shows itself as a DRM render node or an NVIDIA
 * device file. Without one, Vulkan means lavapipe, a CPU rasterizer slower than our CPU path.
 */
export function softwareWebgpu(): boolean {
  if (process.platform !== 'linux') return false;
  const renderNodes = fs.existsSync('/dev/dri')
    ? fs.readdirSync('/dev/dri').filter((n) => n.startsWith('renderD'))
    : [];
  return renderNodes.length === 0 && !fs.existsSync('/dev/nvidia0');
}

export interface DeviceDecision {
  device: ExecutionDevice;
  reason: string;
}

/** Resolves `auto` to the best available provider and checks that an explicit choice exists here. */
export function chooseDevice(choice: DeviceChoice): DeviceDecision {
  const backends = new Set(ort.listSupportedBackends().map((b) => b.name));
  const available = (device: ExecutionDevice): boolean => {
    if (device === 'cuda') return process.platform === 'linux' && cudaProviderInstalled();
    if (device === 'dml') return process.platform === 'win32' && backends.has('dml');
    if (device === 'webgpu') return backends.has('webgpu');
    return true;
  };
  if (choice !== 'auto') {
    if (!available(choice))
      throw new UserError(`${choice} is not available on this machine (${os.platform()}/${os.arch()})`, {
        field: 'device',
      });
    return { device: choice, reason: 'requested' };
  }
  if (available('cuda')) return { device: 'cuda', reason: 'CUDA provider installed' };
  if (available('dml')) return { device: 'dml', reason: 'DirectML on Windows' };
  if (available('webgpu') && !softwareWebgpu()) return { device: 'webgpu', reason: 'WebGPU adapter' };
  return { device: 'cpu', reason: 'no GPU provider found' };
}

/** Frees a device-resident tensor now rather than at garbage collection; host tensors need nothing. */
export function release(tensor: Tensor): void {
  if (tensor.location === 'gpu-buffer') tensor.dispose();
}
