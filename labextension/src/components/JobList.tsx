import React from 'react';

import { FINISHED_PHASES, Job } from '../api';
import { describeResources, elapsed, formatMetrics } from '../format';
import { useNow } from '../hooks';
import { PhaseBadge } from './PhaseBadge';

function JobRow({
  job,
  now,
  selected,
  onOpen,
  onSelect
}: {
  job: Job;
  now: number;
  selected: boolean;
  onOpen: (id: string) => void;
  onSelect: (id: string, selected: boolean) => void;
}): JSX.Element {
  const metrics = formatMetrics(job.metrics);
  return (
    <li
      data-testid="jt-job-row"
      data-job-id={job.id}
      data-phase={job.phase}
      className={`jp-TrainingJobRow${selected ? ' jp-mod-selected' : ''}`}
      role="button"
      tabIndex={0}
      title={job.message || job.notebook || job.id}
      onClick={() => onOpen(job.id)}
      onKeyDown={event =>
        event.target === event.currentTarget && event.key === 'Enter' && onOpen(job.id)
      }
    >
      <div className="jp-TrainingJobRow-head">
        <input
          type="checkbox"
          data-testid="jt-job-select"
          data-job-id={job.id}
          aria-label={`Select ${job.name} to compare`}
          checked={selected}
          onClick={event => event.stopPropagation()}
          onChange={event => onSelect(job.id, event.target.checked)}
        />
        <span className="jp-TrainingJobRow-name">{job.name}</span>
        <PhaseBadge phase={job.phase} />
      </div>
      <div className="jp-TrainingJobRow-meta">
        {[describeResources(job), job.framework, job.backend, elapsed(job, now)]
          .filter(Boolean)
          .join(' · ')}
      </div>
      {metrics && <div className="jp-TrainingJobRow-metrics">{metrics}</div>}
      {job.failure && <div className="jp-TrainingJobRow-failure">{job.failure.reason}</div>}
    </li>
  );
}

export function JobList({
  jobs,
  selected,
  empty = 'No training jobs yet.',
  onOpen,
  onSelect
}: {
  jobs: Job[];
  /** Jobs ticked for the compare view. */
  selected: ReadonlySet<string>;
  empty?: string;
  onOpen: (id: string) => void;
  onSelect: (id: string, selected: boolean) => void;
}): JSX.Element {
  const now = useNow(jobs.some(job => !FINISHED_PHASES.has(job.phase)));
  if (!jobs.length) {
    return <p className="jp-TrainingEmpty">{empty}</p>;
  }
  return (
    <ul className="jp-TrainingJobList">
      {jobs.map(job => (
        <JobRow
          key={job.id}
          job={job}
          now={now}
          selected={selected.has(job.id)}
          onOpen={onOpen}
          onSelect={onSelect}
        />
      ))}
    </ul>
  );
}
