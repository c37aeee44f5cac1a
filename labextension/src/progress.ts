/** Folds a job's event stream into what the details view shows: ranks and log. */
import { JobEvent } from './api';

export interface RankStatus {
  rank: number;
  state: string;
  exitCode: number | null;
  reason: string | null;
  message: string | null;
  step: number | null;
  total: number | null;
  metrics: Record<string, number>;
  error: string | null;
}

export interface LogLine {
  rank: number | null;
  text: string;
}

export interface JobProgress {
  ranks: RankStatus[];
  log: LogLine[];
  /** An error event not tied to one rank (a launch or supervisor failure). */
  error: string | null;
}

/** Lines kept in memory; older ones are dropped from the view. */
export const MAX_LOG_LINES = 10_000;

function pendingRank(rank: number): RankStatus {
  return {
    rank,
    state: 'pending',
    exitCode: null,
    reason: null,
    message: null,
    step: null,
    total: null,
    metrics: {},
    error: null
  };
}

export function emptyProgress(workers: number): JobProgress {
  return {
    ranks: Array.from({ length: workers }, (_, rank) => pendingRank(rank)),
    log: [],
    error: null
  };
}

function updateRank(
  progress: JobProgress,
  rank: number,
  change: (status: RankStatus) => Partial<RankStatus>
): JobProgress {
  const ranks = [...progress.ranks];
  for (let missing = ranks.length; missing <= rank; missing++) {
    ranks.push(pendingRank(missing));
  }
  ranks[rank] = { ...ranks[rank], ...change(ranks[rank]) };
  return { ...progress, ranks };
}

function describeError(data: Record<string, any>): string {
  return [data.exc_type, data.message].filter(Boolean).join(': ') || 'error';
}

export function foldEvent(progress: JobProgress, event: JobEvent): JobProgress {
  const { rank, data } = event;
  switch (event.kind) {
    case 'log': {
      const log = [...progress.log, { rank, text: String(data.line ?? '') }];
      return { ...progress, log: log.slice(-MAX_LOG_LINES) };
    }
    case 'worker':
      if (rank === null) {
        return progress;
      }
      return updateRank(progress, rank, status => ({
        // "event" carries a message (a Kubernetes event, say) without a new state.
        state: data.state && data.state !== 'event' ? data.state : status.state,
        exitCode: data.exit_code ?? status.exitCode,
        reason: data.reason ?? status.reason,
        message: data.message ?? status.message
      }));
    case 'report':
      if (rank === null) {
        return progress;
      }
      return updateRank(progress, rank, status => ({
        step: data.step ?? status.step,
        total: data.total ?? status.total,
        metrics: { ...status.metrics, ...(data.metrics ?? {}) }
      }));
    case 'error':
      return rank === null
        ? { ...progress, error: describeError(data) }
        : updateRank(progress, rank, () => ({ error: describeError(data) }));
    default:
      return progress;
  }
}
