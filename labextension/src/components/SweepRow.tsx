import React, { useEffect, useMemo, useState } from 'react';

import { FINISHED_PHASES, Job, Sweep, TrainingApi } from '../api';
import { describeBest, elapsed, formatParams, sweepSize, trialNumber } from '../format';
import { JobRow } from './JobRow';
import { PhaseBadge } from './PhaseBadge';

/**
 * A sweep's trial jobs, by trial number: those the server listed for it, each in its
 * freshest live version, plus live ones it did not list yet. Asked again whenever a
 * trial starts or ends while the sweep is open.
 */
function useTrialJobs(
  api: TrainingApi,
  sweep: Sweep,
  live: Job[],
  open: boolean,
  onFetched: (jobs: Job[]) => void
): { jobs: Job[]; error: string | null } {
  const [fetched, setFetched] = useState<Job[]>([]);
  const [error, setError] = useState<string | null>(null);
  const changes = `${Object.keys(sweep.trials).length}:${sweep.done}:${sweep.phase}`;
  useEffect(() => {
    if (!open) {
      return;
    }
    let current = true;
    api.getSweep(sweep.id).then(
      detail => {
        if (current) {
          setFetched(detail.jobs);
          setError(null);
          onFetched(detail.jobs);
        }
      },
      reason => current && setError(reason.message ?? String(reason))
    );
    return () => {
      current = false;
    };
  }, [api, sweep.id, open, changes]);

  const jobs = useMemo(() => {
    const byId = new Map(fetched.map(job => [job.id, job]));
    live.filter(job => job.sweep === sweep.id).forEach(job => byId.set(job.id, job));
    return [...byId.values()].sort((a, b) => trialNumber(a) - trialNumber(b));
  }, [fetched, live, sweep.id]);
  return { jobs, error };
}

/** One sweep in the job list: progress and best value; opened, its trials (the best starred). */
export function SweepRow({
  api,
  sweep,
  live,
  now,
  open,
  selected,
  onToggle,
  onOpen,
  onSelect,
  onTrialJobs
}: {
  api: TrainingApi;
  sweep: Sweep;
  /** Every job the stream knows (the sweep's trials among them). */
  live: Job[];
  now: number;
  open: boolean;
  selected: ReadonlySet<string>;
  onToggle: (open: boolean) => void;
  onOpen: (id: string) => void;
  onSelect: (id: string, selected: boolean) => void;
  onTrialJobs: (jobs: Job[]) => void;
}): JSX.Element {
  const trials = useTrialJobs(api, sweep, live, open, onTrialJobs);
  const [error, setError] = useState<string | null>(null);
  const finished = FINISHED_PHASES.has(sweep.phase);
  const best = describeBest(sweep);
  const progress = [
    `${sweep.done}/${sweepSize(sweep)} trials`,
    sweep.running ? `${sweep.running} running` : '',
    sweep.options.metric
      ? `${sweep.options.metric}:${sweep.options.direction === 'maximize' ? 'max' : 'min'}`
      : '',
    elapsed(sweep, now)
  ];
  const cancel = (event: React.MouseEvent) => {
    event.stopPropagation();
    setError(null);
    api.cancelSweep(sweep.id).catch(reason => setError(reason.message ?? String(reason)));
  };

  return (
    <li
      data-testid="jt-sweep-row"
      data-sweep-id={sweep.id}
      data-phase={sweep.phase}
      data-open={open ? 'true' : 'false'}
      className={`jp-TrainingJobRow jp-TrainingSweepRow${open ? ' jp-mod-open' : ''}`}
      role="button"
      tabIndex={0}
      aria-expanded={open}
      title={sweep.message || sweep.notebook || sweep.id}
      onClick={() => onToggle(!open)}
      onKeyDown={event =>
        event.target === event.currentTarget && event.key === 'Enter' && onToggle(!open)
      }
    >
      <div className="jp-TrainingJobRow-head">
        <span data-testid="jt-sweep-toggle" className="jp-TrainingSweepRow-chevron" aria-hidden>
          {open ? '▾' : '▸'}
        </span>
        <span className="jp-TrainingJobRow-name">{sweep.name}</span>
        <span className="jp-TrainingSweepRow-kind">sweep</span>
        <PhaseBadge phase={sweep.phase} />
      </div>
      <div data-testid="jt-sweep-progress" className="jp-TrainingJobRow-meta">
        {progress.filter(Boolean).join(' · ')}
      </div>
      {best && (
        <div data-testid="jt-sweep-best" className="jp-TrainingJobRow-metrics">
          ★ {best}
          {sweep.best && ` · ${formatParams(sweep.best.params)}`}
        </div>
      )}
      {sweep.stopped && (
        <div data-testid="jt-sweep-stopped" className="jp-TrainingHint">
          Stopped: the kernel that ran it is gone; %%train_sweep --resume {sweep.id} continues it.
        </div>
      )}
      {(sweep.phase === 'Failed' || sweep.phase === 'Cancelled') && sweep.message && (
        <div
          className={
            sweep.phase === 'Failed' ? 'jp-TrainingJobRow-failure' : 'jp-TrainingJobRow-meta'
          }
        >
          {sweep.message}
        </div>
      )}
      {open && (
        <div className="jp-TrainingSweepRow-trials" onClick={event => event.stopPropagation()}>
          {!finished && (
            <button data-testid="jt-sweep-cancel" className="jp-mod-warn" onClick={cancel}>
              Cancel sweep
            </button>
          )}
          {(error || trials.error) && (
            <div className="jp-TrainingError" role="alert">
              {error || trials.error}
            </div>
          )}
          {trials.jobs.length ? (
            <ul className="jp-TrainingJobList">
              {trials.jobs.map(job => (
                <JobRow
                  key={job.id}
                  testId="jt-trial-row"
                  job={job}
                  now={now}
                  selected={selected.has(job.id)}
                  best={sweep.best?.job === job.id}
                  detail={formatParams(trialParams(sweep, job))}
                  onOpen={onOpen}
                  onSelect={onSelect}
                />
              ))}
            </ul>
          ) : (
            <p className="jp-TrainingEmpty">No trial has started yet.</p>
          )}
        </div>
      )}
    </li>
  );
}

/** The values the sweep searched for this trial (not every param of its run). */
function trialParams(sweep: Sweep, job: Job): Record<string, unknown> {
  const recorded = sweep.trials[String(trialNumber(job))];
  if (recorded?.job === job.id) {
    return recorded.params;
  }
  const names = (sweep.options.params ?? []).map(param => param.name);
  return Object.fromEntries(names.map(name => [name, job.params?.[name]]));
}
