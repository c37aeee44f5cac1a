/** Small display helpers shared by the components. */
import { Job } from './api';

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

/** Run time so far (or in total once finished); empty before the job starts. */
export function elapsed(job: Job, now: number): string {
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
