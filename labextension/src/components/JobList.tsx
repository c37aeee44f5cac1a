import React from 'react';

import { FINISHED_PHASES, Job, Sweep, TrainingApi } from '../api';
import { useNow } from '../hooks';
import { JobRow } from './JobRow';
import { SweepRow } from './SweepRow';

type Entry = { kind: 'job'; job: Job } | { kind: 'sweep'; sweep: Sweep };

function created(entry: Entry): number {
  return Date.parse((entry.kind === 'job' ? entry.job.created : entry.sweep.created) ?? '') || 0;
}

/**
 * The list's rows: each sweep once (its trials inside it), beside the jobs that are no
 * sweep's trials, newest first. Without sweeps, the jobs as given (filtered, sorted).
 */
function entries(jobs: Job[], sweeps: Sweep[]): Entry[] {
  if (!sweeps.length) {
    return jobs.map(job => ({ kind: 'job', job }));
  }
  const known = new Set(sweeps.map(sweep => sweep.id));
  const rows: Entry[] = [
    ...jobs
      .filter(job => !job.sweep || !known.has(job.sweep))
      .map(job => ({ kind: 'job', job }) as const),
    ...sweeps.map(sweep => ({ kind: 'sweep', sweep }) as const)
  ];
  return rows.sort((a, b) => created(b) - created(a));
}

export function JobList({
  api,
  jobs,
  sweeps = [],
  selected,
  expanded = new Set(),
  empty = 'No training jobs yet.',
  onOpen,
  onSelect,
  onExpand = () => undefined,
  onTrialJobs = () => undefined
}: {
  api: TrainingApi;
  jobs: Job[];
  /** Sweeps shown as one row each, their trial jobs inside them (none: jobs only). */
  sweeps?: Sweep[];
  /** Jobs ticked for the compare view. */
  selected: ReadonlySet<string>;
  /** Sweeps opened to show their trials. */
  expanded?: ReadonlySet<string>;
  empty?: string;
  onOpen: (id: string) => void;
  onSelect: (id: string, selected: boolean) => void;
  onExpand?: (id: string, open: boolean) => void;
  /** Trial jobs fetched for an opened sweep (so their details can open). */
  onTrialJobs?: (jobs: Job[]) => void;
}): JSX.Element {
  const now = useNow(
    jobs.some(job => !FINISHED_PHASES.has(job.phase)) ||
      sweeps.some(sweep => !FINISHED_PHASES.has(sweep.phase))
  );
  const rows = entries(jobs, sweeps);
  if (!rows.length) {
    return <p className="jp-TrainingEmpty">{empty}</p>;
  }
  return (
    <ul className="jp-TrainingJobList">
      {rows.map(row =>
        row.kind === 'job' ? (
          <JobRow
            key={row.job.id}
            job={row.job}
            now={now}
            selected={selected.has(row.job.id)}
            onOpen={onOpen}
            onSelect={onSelect}
          />
        ) : (
          <SweepRow
            key={row.sweep.id}
            api={api}
            sweep={row.sweep}
            live={jobs}
            now={now}
            open={expanded.has(row.sweep.id)}
            selected={selected}
            onToggle={open => onExpand(row.sweep.id, open)}
            onOpen={onOpen}
            onSelect={onSelect}
            onTrialJobs={onTrialJobs}
          />
        )
      )}
    </ul>
  );
}
