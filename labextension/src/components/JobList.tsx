import React from 'react';

import { FINISHED_PHASES, Job } from '../api';
import { describeResources, elapsed, formatMetrics } from '../format';
import { useNow } from '../hooks';
import { PhaseBadge } from './PhaseBadge';

function JobRow({
  job,
  now,
  onOpen
}: {
  job: Job;
  now: number;
  onOpen: (id: string) => void;
}): JSX.Element {
  const metrics = formatMetrics(job.metrics);
  return (
    <li
      data-testid="jt-job-row"
      data-job-id={job.id}
      data-phase={job.phase}
      className="jp-TrainingJobRow"
      role="button"
      tabIndex={0}
      title={job.message || job.notebook || job.id}
      onClick={() => onOpen(job.id)}
      onKeyDown={event => event.key === 'Enter' && onOpen(job.id)}
    >
      <div className="jp-TrainingJobRow-head">
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
  onOpen
}: {
  jobs: Job[];
  onOpen: (id: string) => void;
}): JSX.Element {
  const now = useNow(jobs.some(job => !FINISHED_PHASES.has(job.phase)));
  if (!jobs.length) {
    return <p className="jp-TrainingEmpty">No training jobs yet.</p>;
  }
  return (
    <ul className="jp-TrainingJobList">
      {jobs.map(job => (
        <JobRow key={job.id} job={job} now={now} onOpen={onOpen} />
      ))}
    </ul>
  );
}
