// LoRA adapters as llama.cpp reads them (GGUF v3), written the way its convert_lora_to_gguf.py does:
// general.type = adapter, adapter.type = lora, adapter.lora.alpha, general.architecture of the base, and tensors
// blk.{i}.{attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down}.weight.lora_{a,b} in F32.
// llama.cpp's HF converter permutes q_proj/k_proj rows for the llama architecture (its RoPE pairs neighbouring
// dimensions, transformers' rotate_half pairs halves); since W = B A, the same permutation applies to lora_b's rows.
// Legend: r = rank, in/out = the projection's widths. GGUF lists dims innermost first: A [r, in] is ne = (in, r).
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../shared/errors.js';
import { ALL_TARGETS, type ModelSpec, type TargetModule } from '../model/architecture.js';
import { writeFileAtomic } from '../util/atomicWrite.js';
import type { LoraSettings } from '../../shared/training.js';
import {
  ALIGNMENT,
  f32,
  GGUF_MAGIC,
  GGUF_VERSION,
  ggufHeader,
  GgmlType,
  permuteRopeRows,
  str,
  u32,
  ValueType,
  type MetadataValue,
  type TensorInfo,
} from './ggufFile.js';
import type { LoraPair, LoraWeights } from './loraAdapter.js';

/** llama.cpp's tensor names (blk.{i}.NAME.weight) of the LoRA targets. */
export const GGUF_NAMES: Record<TargetModule, string> = {
  q_proj: 'attn_q',
  k_proj: 'attn_k',
  v_proj: 'attn_v',
  o_proj: 'attn_output',
  gate_proj: 'ffn_gate',
  up_proj: 'ffn_up',
  down_proj: 'ffn_down',
};

/** llama.cpp's architecture name for a base model (mistral converts as llama). */
export function ggufArchitecture(spec: ModelSpec): string {
  return spec.modelType === 'mistral' ? 'llama' : spec.modelType;
}

/** The heads whose q/k rows llama.cpp's converter permutes for `target`, or null where it leaves them. */
export function headsToPermute(spec: ModelSpec, target: TargetModule): number | null {
  if (ggufArchitecture(spec) !== 'llama') return null;
  if (target === 'q_proj') return spec.numHeads;
  if (target === 'k_proj') return spec.numKvHeads;
  return null;
}

/** llama.cpp scales by alpha / r; rsLoRA's alpha / sqrt(r) is expressed as alpha * sqrt(r) over r. */
export function ggufAlpha(settings: LoraSettings): number {
  return settings.useRslora ? settings.alpha * Math.sqrt(settings.rank) : settings.alpha;
}

/** Writes `lora` as a llama.cpp LoRA adapter GGUF. */
export function writeGgufLoraAdapter(file: string, lora: LoraWeights, spec: ModelSpec, baseName: string): void {
  const tensors: { name: string; ne: number[]; data: Float32Array }[] = [];
  const r = lora.settings.rank;
  lora.layers.forEach((pairs, layer) => {
    for (const [target, pair] of pairs) {
      const heads = headsToPermute(spec, target);
      const b = heads ? permuteRopeRows(pair.b, r, heads, false) : pair.b;
      const base = `blk.${layer}.${GGUF_NAMES[target]}.weight`;
      tensors.push({ name: `${base}.lora_a`, ne: [pair.a.length / r, r], data: pair.a });
      tensors.push({ name: `${base}.lora_b`, ne: [r, pair.b.length / r], data: b });
    }
  });
  const metadata = new Map<string, MetadataValue>([
    ['general.architecture', str(ggufArchitecture(spec))],
    ['general.type', str('adapter')],
    ['general.name', str(`${path.basename(baseName)} LoRA`)],
    ['general.alignment', u32(ALIGNMENT)],
    ['adapter.type', str('lora')],
    ['adapter.lora.alpha', f32(ggufAlpha(lora.settings))],
  ]);
  const infos: TensorInfo[] = tensors.map((t) => ({
    name: t.name,
    ne: t.ne,
    type: GgmlType.F32,
    bytes: t.data.byteLength,
  }));
  const { header } = ggufHeader(metadata, infos);
  const parts: Uint8Array[] = [header];
  for (const t of tensors) {
    parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    const gap = (ALIGNMENT - (t.data.byteLength % ALIGNMENT)) % ALIGNMENT;
    if (gap) parts.push(new Uint8Array(gap));
  }
  writeFileAtomic(file, parts);
}

/**
 * Reads back a GGUF LoRA adapter written for `spec` (F32 tensors), undoing the q/k permutation. The rank comes from
 * the tensors; GGUF does not record dropout or whether alpha was rsLoRA's, so the caller says.
 */
export function readGgufLoraAdapter(
  file: string,
  spec: ModelSpec,
  settings: { dropout: number; useRslora: boolean },
): LoraWeights {
  const bytes = fs.readFileSync(file);
  let at = 0;
  const u32 = () => ((at += 4), bytes.readUInt32LE(at - 4));
  const u64 = () => ((at += 8), Number(bytes.readBigUInt64LE(at - 8)));
  const string = () => {
    const n = u64();
    at += n;
    return bytes.toString('utf8', at - n, at);
  };
  if (u32() !== GGUF_MAGIC) throw new UserError(`${file}: not a GGUF file`);
  if (u32() !== GGUF_VERSION) throw new UserError(`${file}: GGUF version other than 3`);
  const tensorCount = u64();
  const kvCount = u64();
  const meta = new Map<string, string | number>();
  for (let i = 0; i < kvCount; i++) {
    const key = string();
    const type = u32();
    if (type === ValueType.STRING) meta.set(key, string());
    else if (type === ValueType.UINT32) meta.set(key, u32());
    else if (type === ValueType.FLOAT32) meta.set(key, ((at += 4), bytes.readFloatLE(at - 4)));
    else throw new UserError(`${file}: metadata "${key}" has a value type (${type}) this reader does not take`);
  }
  if (meta.get('general.type') !== 'adapter' || meta.get('adapter.type') !== 'lora')
    throw new UserError(`${file}: not a LoRA adapter GGUF`);
  const infos = Array.from({ length: tensorCount }, () => {
    const name = string();
    const ne = Array.from({ length: u32() }, () => u64());
    const type = u32();
    if (type !== GgmlType.F32) throw new UserError(`${file}: tensor "${name}" is not F32`);
    return { name, ne, offset: u64() };
  });
  const dataStart = Math.ceil(at / ALIGNMENT) * ALIGNMENT;
  const tensor = (name: string) => {
    const info = infos.find((t) => t.name === name);
    if (!info) return null;
    const count = info.ne.reduce((a, b) => a * b, 1);
    return new Float32Array(
      bytes.buffer.slice(
        bytes.byteOffset + dataStart + info.offset,
        bytes.byteOffset + dataStart + info.offset + count * 4,
      ),
    );
  };
  const targets = ALL_TARGETS.filter((t) => infos.some((info) => info.name === `blk.0.${GGUF_NAMES[t]}.weight.lora_a`));
  if (targets.length === 0) throw new UserError(`${file}: no LoRA tensors for layer 0`);
  const rank = infos.find((info) => info.name === `blk.0.${GGUF_NAMES[targets[0]]}.weight.lora_a`)!.ne[1];
  const layers = Array.from({ length: spec.numLayers }, (_, layer) => {
    const pairs = new Map<TargetModule, LoraPair>();
    for (const target of targets) {
      const base = `blk.${layer}.${GGUF_NAMES[target]}.weight`;
      const a = tensor(`${base}.lora_a`);
      const b = tensor(`${base}.lora_b`);
      if (!a || !b) throw new UserError(`${file}: ${base}.lora_a/lora_b missing`);
      const heads = headsToPermute(spec, target);
      pairs.set(target, { a, b: heads ? permuteRopeRows(b, rank, heads, true) : b });
    }
    return pairs;
  });
  const alpha = Number(meta.get('adapter.lora.alpha'));
  return {
    settings: { ...settings, rank, targets, alpha: settings.useRslora ? alpha / Math.sqrt(rank) : alpha },
    targets,
    layers,
  };
}

/** Chat formats Ollama can express as its Go template, recognized by their markers. */
function ollamaTemplate(chatTemplate: string | null): { template: string; stops: string[] } | null {
  if (!chatTemplate) return null;
  if (chatTemplate.includes('<|im_start|>')) {
    return {
      template:
        '{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n',
      stops: ['<|im_end|>'],
    };
  }
  if (chatTemplate.includes('<|start_header_id|>')) {
    return {
      template:
        '{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n',
      stops: ['<|eot_id|>'],
    };
  }
  return null;
}

/**
 * An Ollama Modelfile: FROM the base (a model folder, or ./model.gguf beside it), ADAPTER the LoRA file when there is
 * one, and the chat format when it translates.
 */
export function ollamaModelfile(from: string, adapterFile: string | null, chatTemplate: string | null): string {
  const lines = [`FROM ${from}`];
  if (adapterFile) lines.push(`ADAPTER ./${path.basename(adapterFile)}`);
  const translated = ollamaTemplate(chatTemplate);
  if (translated) {
    lines.push(`TEMPLATE """${translated.template}"""`);
    for (const stop of translated.stops) lines.push(`PARAMETER stop "${stop}"`);
  } else {
    lines.push(
      chatTemplate
        ? "# The base model's chat template could not be translated to Ollama's template language automatically: write TEMPLATE by hand (https://github.com/ollama/ollama/blob/main/docs/template.md)."
        : '# The base model has no chat template: Ollama will send prompts as plain text.',
    );
  }
  return `${lines.join('\n')}\n`;
}
