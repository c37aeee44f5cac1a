import React from 'react';

import { Job } from '../api';
import { describeResources, elapsed, formatMetrics, scheduledBy } from '../format';
import { PhaseBadge } from './PhaseBadge';

/** One job in the list (or one trial inside its sweep's row). */
export function JobRow({
  job,
  now,
  selected,
  onOpen,
  onSelect,
  testId = 'jt-job-row',
  best = false,
  detail
}: {
  job: Job;
  now: number;
  selected: boolean;
  onOpen: (id: string) => void;
  onSelect: (id: string, selected: boolean) => void;
  testId?: string;
  /** The best trial of its sweep: marked with a star. */
  best?: boolean;
  /** A line under the name (a trial's searched values). */
  detail?: string;
}): JSX.Element {
  const metrics = formatMetrics(job.metrics);
  const scheduled = scheduledBy(job);
  return (
    <li
      data-testid={testId}
      data-job-id={job.id}
      data-phase={job.phase}
      data-best={best ? 'true' : undefined}
      className={`jp-TrainingJobRow${selected ? ' jp-mod-selected' : ''}${best ? ' jp-mod-best' : ''}`}
      role="button"
      tabIndex={0}
      title={job.message || job.notebook || job.id}
      onClick={event => {
        event.stopPropagation(); // a trial's row sits inside its sweep's
        onOpen(job.id);
      }}
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
        {best && (
          <span data-testid="jt-trial-best" className="jp-TrainingTrialBest" title="The best trial">
            ★ best
          </span>
        )}
        <PhaseBadge phase={job.phase} />
      </div>
      {detail && <div className="jp-TrainingJobRow-params">{detail}</div>}
      <div className="jp-TrainingJobRow-meta">
        {[describeResources(job), job.framework, job.backend, elapsed(job, now)]
          .filter(Boolean)
          .join(' · ')}
        {scheduled && (
          <span data-testid="jt-job-scheduled" title={`Run by jupyter-scheduler job ${scheduled}`}>
            {` · ⏱ scheduled ${scheduled.slice(0, 8)}`}
          </span>
        )}
        {job.parent_id && (
          <span data-testid="jt-job-resumed" title={`Resumed from job ${job.parent_id}`}>
            {' · ↻ resumed'}
          </span>
        )}
      </div>
      {metrics && <div className="jp-TrainingJobRow-metrics">{metrics}</div>}
      {job.failure && <div className="jp-TrainingJobRow-failure">{job.failure.reason}</div>}
    </li>
  );
}
