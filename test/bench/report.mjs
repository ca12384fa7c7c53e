// Summaries of interleaved rounds (min and median over the accepted runs) and the Markdown report.

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const spread = (values) =>
  values.length ? { min: Math.min(...values), median: median(values), max: Math.max(...values) } : null;

/**
 * A contender's figures over its accepted runs; when every run was rejected, over all of them, flagged `contended`.
 * Times are summarized by their minimum (the least disturbed run) and median; throughputs accordingly by their
 * maximum ("best": the run with the minimum time) and median.
 */
export function summarize(contender, { stepFlops, peakGflops } = {}) {
  const accepted = contender.runs.filter((run) => run.accepted);
  const samples = accepted.length ? accepted : contender.runs;
  if (!samples.length) return null;
  const pick = (key) => samples.map((run) => run.metrics[key]).filter((v) => typeof v === 'number');
  const summary = {
    runs: samples.length,
    rejected: contender.runs.length - accepted.length,
    contended: accepted.length === 0,
    wallSeconds: spread(samples.map((run) => run.wallSeconds)),
    busyCores: spread(samples.map((run) => run.busyCores)),
    otherCpuSeconds: spread(samples.map((run) => run.otherCpuSeconds)),
    // Max RSS of the largest process, measured the same way for everyone (wait4); the contender's own figure if not.
    peakRssBytes: spread(samples.map((run) => run.maxRssBytes ?? run.metrics.peakRssBytes).filter(Boolean)),
  };
  if (pick('secondsPerStep').length) {
    summary.secondsPerStep = spread(pick('secondsPerStep'));
    summary.tokensPerSecond = spread(pick('tokensPerSecond'));
    if (stepFlops && peakGflops) {
      summary.gflopPerStep = stepFlops / 1e9;
      summary.mfu = {
        best: stepFlops / summary.secondsPerStep.min / 1e9 / peakGflops,
        median: stepFlops / summary.secondsPerStep.median / 1e9 / peakGflops,
      };
    }
  }
  if (pick('decodeTokensPerSecond').length) {
    summary.decodeTokensPerSecond = spread(pick('decodeTokensPerSecond'));
    summary.timeToFirstTokenSeconds = spread(pick('timeToFirstTokenSeconds'));
  }
  return summary;
}

const fixed = (value, digits) => (typeof value === 'number' ? value.toFixed(digits) : '-');
const gib = (bytes) => (bytes ? (bytes / 2 ** 30).toFixed(2) : '-');
const ratio = (a, b) => (a / b).toFixed(2);

/** A row's first cell: the label, marked when it was skipped, failed or only has contended runs. */
function name(c) {
  if (c.skipped) return `${c.label} (skipped: ${c.skipped.split('\n')[0]})`;
  if (c.failed && !c.summary) return `${c.label} (failed: ${c.failed.split('\n')[0].slice(0, 160)})`;
  return c.summary?.contended ? `${c.label} †` : c.label;
}

function trainingTable(contenders) {
  const lines = [
    '| contender | tok/s at min s/step | tok/s median | s/step min / median | peak RSS GiB | busy cores | MFU (median) | rejected |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const c of contenders) {
    const s = c.summary;
    if (!s) {
      lines.push(`| ${name(c)} | - | - | - | - | - | - | - |`);
      continue;
    }
    lines.push(
      `| ${name(c)} | ${fixed(s.tokensPerSecond?.max, 1)} | ${fixed(s.tokensPerSecond?.median, 1)} | ${fixed(s.secondsPerStep?.min, 2)} / ${fixed(s.secondsPerStep?.median, 2)} | ${gib(s.peakRssBytes?.max)} | ${fixed(s.busyCores.median, 2)} | ${s.mfu ? `${(100 * s.mfu.median).toFixed(0)}%` : '-'} | ${s.rejected} |`,
    );
  }
  return lines;
}

function decodingTable(contenders) {
  const lines = [
    '| contender | decode tok/s best | decode tok/s median | TTFT s min | TTFT s median | peak RSS GiB | busy cores | rejected |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const c of contenders) {
    const s = c.summary;
    if (!s) {
      lines.push(`| ${name(c)} | - | - | - | - | - | - | - |`);
      continue;
    }
    lines.push(
      `| ${name(c)} | ${fixed(s.decodeTokensPerSecond?.max, 1)} | ${fixed(s.decodeTokensPerSecond?.median, 1)} | ${fixed(s.timeToFirstTokenSeconds?.min, 3)} | ${fixed(s.timeToFirstTokenSeconds?.median, 3)} | ${gib(s.peakRssBytes?.max)} | ${fixed(s.busyCores.median, 2)} | ${s.rejected} |`,
    );
  }
  return lines;
}

/** PEFT Studio with checkpointing against the fastest alternative, with or without checkpointing. */
function trainingRatios(contenders) {
  const ours = contenders.find((c) => c.id === 'peft-studio-ckpt-on')?.summary;
  const others = contenders.filter((c) => !c.ours && c.summary?.tokensPerSecond);
  if (!ours?.tokensPerSecond || !others.length) return [];
  const fastest = (list) =>
    list.reduce((a, b) => (b.summary.tokensPerSecond.median > a.summary.tokensPerSecond.median ? b : a));
  const line = (what, alt) =>
    `- PEFT Studio with checkpointing against ${what} (${alt.label}, ${fixed(alt.summary.tokensPerSecond.median, 1)} tok/s median): ${ratio(ours.tokensPerSecond.median, alt.summary.tokensPerSecond.median)}x its tokens/s (median; ${ratio(ours.tokensPerSecond.max, alt.summary.tokensPerSecond.max)}x best against best) at ${ratio(ours.peakRssBytes.max, alt.summary.peakRssBytes.max)}x its peak RSS.`;
  const lines = ['', line('the fastest alternative', fastest(others))];
  const withCkpt = others.filter((c) => c.checkpointing);
  if (withCkpt.length) lines.push(line('the fastest alternative with checkpointing', fastest(withCkpt)));
  const leanest = others.reduce((a, b) => (b.summary.peakRssBytes.max < a.summary.peakRssBytes.max ? b : a));
  lines.push(
    `- Lowest alternative peak RSS: ${leanest.label}, ${gib(leanest.summary.peakRssBytes.max)} GiB, against PEFT Studio's ${gib(ours.peakRssBytes.max)} GiB (${ratio(ours.peakRssBytes.max, leanest.summary.peakRssBytes.max)}x).`,
  );
  return lines;
}

/** How many greedy ids two decoders agree on before they first differ. */
function agreedPrefix(a, b) {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

function decodingRatios(contenders) {
  const oursC = contenders.find((c) => c.id === 'peft-studio');
  const ours = oursC?.summary;
  if (!ours?.decodeTokensPerSecond) return [];
  const lines = [''];
  const f32 = contenders.find((c) => c.id === 'llama.cpp-f32');
  if (f32?.summary?.decodeTokensPerSecond) {
    lines.push(
      `- PEFT Studio fp32 against llama.cpp F32 on the same weights: ${ratio(ours.decodeTokensPerSecond.median, f32.summary.decodeTokensPerSecond.median)}x its decode tokens/s (median; ${ratio(ours.decodeTokensPerSecond.max, f32.summary.decodeTokensPerSecond.max)}x best against best), time to first token ${ratio(ours.timeToFirstTokenSeconds.median, f32.summary.timeToFirstTokenSeconds.median)}x its.`,
    );
    const a = oursC.runs.find((run) => run.metrics.ids)?.metrics.ids;
    const b = f32.runs.find((run) => run.metrics.ids)?.metrics.ids;
    if (a && b)
      lines.push(
        `- Greedy ids, PEFT Studio against llama.cpp F32: the first ${agreedPrefix(a, b)} of ${Math.min(a.length, b.length)} agree (random weights give near-flat logits, so rounding may flip a late argmax).`,
      );
  }
  for (const c of contenders.filter((x) => x.llamaType && x.llamaType !== 'f32' && x.summary?.decodeTokensPerSecond))
    lines.push(
      `- Against llama.cpp ${c.llamaType.toUpperCase()}: ${ratio(ours.decodeTokensPerSecond.median, c.summary.decodeTokensPerSecond.median)}x (median).`,
    );
  return lines.length > 1 ? lines : [];
}

export function markdown(report, { sections, training, decoding }) {
  const t = report.threads;
  const peak = report.ortMatmulGflops;
  const lines = [
    `Run ${report.date} on ${report.cpu}, ${report.cores} cores, every contender on T = ${t} threads, ${report.rounds} interleaved round${report.rounds > 1 ? 's' : ''}. ONNX Runtime fp32 MatMul 2048^3, best of 10 (median): ${fixed(peak?.threads, 0)} (${fixed(peak?.runs?.threads?.medianGflops, 0)}) GFLOP/s on ${t} threads, ${fixed(peak?.oneThread, 0)} (${fixed(peak?.runs?.oneThread?.medianGflops, 0)}) on 1; MFU below is model FLOP/s over the ${t}-thread best (other libraries' kernels can beat ONNX Runtime's, so it can pass 100%).`,
    `A run is rejected (and retried, ${report.rejection.maxAttempts} attempts at most) when other work used more than max(${report.rejection.minSeconds} s, ${100 * report.rejection.fraction}% x wall x cores) of CPU during it; † marks a contender none of whose runs passed.`,
  ];
  if (report.versions) lines.push(`Versions: ${report.versions}.`);
  if (sections.speed && training) {
    lines.push(
      '',
      `LoRA r16 alpha 32 on q,k,v,o, ${training.layers}-layer SmolLM2-135M shape, batch ${training.batchSize} x ${training.seqLen}, fp32, AdamW, CPU, ${training.steps} timed step${training.steps > 1 ? 's' : ''} after one warm-up per process:`,
      '',
      ...trainingTable(training.contenders),
      ...trainingRatios(training.contenders),
    );
  }
  if (sections.decoding && decoding) {
    lines.push(
      '',
      `Greedy decoding, batch 1, ${decoding.newTokens} new tokens after a ${decoding.promptLen}-token prompt, ${decoding.layers}-layer SmolLM2-135M shape, CPU:`,
      '',
      ...decodingTable(decoding.contenders),
      ...decodingRatios(decoding.contenders),
    );
  }
  const off = report.results.memory?.['checkpointing off'];
  const on = report.results.memory?.['checkpointing on'];
  if (off && on)
    lines.push(
      '',
      `Memory, ${report.results.memory.layers} layers, batch 4 x 512: peak RSS ${gib(off.peakRssBytes)} GiB with checkpointing off, ${gib(on.peakRssBytes)} GiB on: ${ratio(off.peakRssBytes, on.peakRssBytes)}x lower.`,
    );
  const data = report.results.data;
  if (data)
    lines.push(
      '',
      `Dataset pipeline (read + render with Llama 3.1's chat template + tokenize, completion-only labels): ${data.megabytes.toFixed(0)} MB chat JSONL, ${data.rows} rows, ${data.tokens} tokens in ${data.seconds.toFixed(1)} s: ${data.rowsPerSecond.toFixed(0)} rows/s, ${data.tokensPerSecond.toFixed(0)} tokens/s.`,
    );
  return `${lines.join('\n')}\n`;
}
