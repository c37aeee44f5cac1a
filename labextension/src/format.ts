/** Small display helpers shared by the components. */
import { Job, Sweep } from './api';

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

/** Run time so far (or in total once finished); empty before the job (or sweep) starts. */
export function elapsed(
  job: { created: string | null; started?: string | null; finished: string | null },
  now: number
): string {
  const start = job.started ?? job.created;
  if (!start) {
    return '';
  }
  const end = job.finished ? Date.parse(job.finished) : now;
  return formatDuration((end - Date.parse(start)) / 1000);
}

export function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toPrecision(4);
}

export function formatMetrics(metrics: Record<string, number> | null, limit = 3): string {
  return Object.entries(metrics ?? {})
    .slice(0, limit)
    .map(([name, value]) => `${name} ${formatNumber(value)}`)
    .join(' · ');
}

export function describeResources(job: Job): string {
  const nproc = job.nproc_per_worker ?? 1;
  const workers =
    `${job.workers} worker${job.workers === 1 ? '' : 's'}` +
    (nproc > 1 ? ` × ${nproc} processes` : '');
  return job.gpus ? `${workers} × ${job.gpus} GPU` : `${workers} · CPU`;
}

/** Ranks in the job: workers × processes per worker. */
export function worldSize(job: Job): number {
  return job.world_size ?? job.workers;
}

/** Four significant digits without trailing zeros: 0.01, 1.235, 12000. */
export function formatShort(value: number): string {
  return String(Number(value.toPrecision(4)));
}

/** `lr=0.01 · layers=3`: a trial's searched values. */
export function formatParams(params: Record<string, unknown> | undefined): string {
  return Object.entries(params ?? {})
    .map(([name, value]) => `${name}=${typeof value === 'number' ? formatShort(value) : value}`)
    .join(' · ');
}

/** How many trials the sweep runs: `--trials`, or fewer when a grid has fewer points. */
export function sweepSize(sweep: Sweep): number {
  const trials = sweep.options.trials ?? Object.keys(sweep.trials).length;
  if (sweep.options.sampler !== 'grid' || !sweep.options.params) {
    return trials;
  }
  const points = sweep.options.params.reduce((product, param) => {
    if (param.kind === 'choice') {
      return product * param.args.length;
    }
    const [low, high, step = 1] = param.args as number[];
    return product * (Math.floor((high - low) / step) + 1);
  }, 1);
  return Math.min(trials, points);
}

/** `best loss 0.031 (t5)`, or '' while no trial has succeeded. */
export function describeBest(sweep: Sweep): string {
  const { best } = sweep;
  if (!best || typeof best.value !== 'number') {
    return '';
  }
  return `best ${sweep.options.metric ?? 'value'} ${formatShort(best.value)} (t${best.trial})`;
}

/** A trial job's number within its sweep (its `trial` tag, else its name's `-tN`). */
export function trialNumber(job: Job): number {
  const tag = job.tags?.trial;
  const text = typeof tag === 'string' || typeof tag === 'number' ? String(tag) : '';
  const number = parseInt(text || (job.name.match(/-t(\d+)$/)?.[1] ?? ''), 10);
  return Number.isNaN(number) ? Number.MAX_SAFE_INTEGER : number;
}

/** The jupyter-scheduler job whose scheduled run launched `job` (its `scheduler_job_id` tag). */
export function scheduledBy(job: Job): string {
  const tag = job.tags?.scheduler_job_id;
  return typeof tag === 'string' ? tag : '';
}
