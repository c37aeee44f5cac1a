import React from 'react';

import { Job, JobDetail, LineageJob, RESUMABLE_PHASES } from '../api';
import { PhaseBadge } from './PhaseBadge';

/**
 * A job's resume chain, oldest first: what the server listed (`lineage_jobs`), with the
 * phases (and any later jobs) of the chain the event stream has told us since.
 */
export function lineageOf(job: Job, detail: JobDetail | null, known: Job[]): LineageJob[] {
  const lineage = job.lineage ?? job.id;
  const chain = new Map<string, LineageJob>();
  for (const entry of detail?.id === job.id ? (detail.lineage_jobs ?? []) : []) {
    chain.set(entry.id, entry);
  }
  for (const other of [job, ...known]) {
    if ((other.lineage ?? other.id) !== lineage) {
      continue;
    }
    const listed = chain.get(other.id);
    chain.set(other.id, {
      id: other.id,
      name: other.name,
      phase: other.phase,
      parent_id: other.parent_id ?? null,
      created: other.created,
      finished: other.finished,
      checkpoints: other.checkpoints?.length ?? listed?.checkpoints
    });
  }
  return [...chain.values()].sort(
    (a, b) => Date.parse(a.created ?? '') - Date.parse(b.created ?? '') || a.id.localeCompare(b.id)
  );
}

function JobLink({
  entry,
  testId,
  onOpen
}: {
  entry: { id: string; name?: string };
  testId: string;
  onOpen: (id: string) => void;
}): JSX.Element {
  return (
    <a
      href="#"
      data-testid={testId}
      data-job-id={entry.id}
      className="jp-TrainingLink"
      title={`Open job ${entry.id}`}
      onClick={event => {
        event.preventDefault();
        onOpen(entry.id);
      }}
    >
      {entry.name ? `${entry.name} (${entry.id})` : entry.id}
    </a>
  );
}

/** "Resumed from <parent>", "Resumed as <child>", and the whole chain when it is longer. */
export function JobLineage({
  job,
  chain,
  onOpen
}: {
  job: Job;
  chain: LineageJob[];
  onOpen: (id: string) => void;
}): JSX.Element | null {
  const parent = job.parent_id
    ? (chain.find(entry => entry.id === job.parent_id) ?? { id: job.parent_id })
    : null;
  const children = chain.filter(entry => entry.parent_id === job.id);
  if (!parent && !children.length) {
    return null;
  }
  return (
    <section data-testid="jt-lineage" className="jp-TrainingLineage">
      {parent && (
        <div data-testid="jt-resumed-from">
          ↻ Resumed from <JobLink entry={parent} testId="jt-lineage-parent" onOpen={onOpen} />
        </div>
      )}
      {children.map(child => (
        <div key={child.id} data-testid="jt-resumed-as">
          Resumed as <JobLink entry={child} testId="jt-lineage-child" onOpen={onOpen} />{' '}
          <PhaseBadge phase={child.phase} />
        </div>
      ))}
      {chain.length > 2 && (
        <details className="jp-TrainingLineage-chain">
          <summary>Resume chain of {chain.length} jobs</summary>
          <ol data-testid="jt-lineage-chain">
            {chain.map(entry => (
              <li
                key={entry.id}
                data-job-id={entry.id}
                className={entry.id === job.id ? 'jp-mod-current' : undefined}
              >
                {entry.id === job.id ? (
                  <span>
                    {entry.name} ({entry.id})
                  </span>
                ) : (
                  <JobLink entry={entry} testId="jt-lineage-link" onOpen={onOpen} />
                )}{' '}
                <PhaseBadge phase={entry.phase} />
              </li>
            ))}
          </ol>
        </details>
      )}
    </section>
  );
}

/** How many checkpoints the job saved and the latest step, and each attempt's workers. */
export function JobCheckpoints({ job }: { job: Job }): JSX.Element | null {
  const marks = job.checkpoints ?? [];
  const attempts = job.attempts ?? [];
  const latest = marks.length ? Math.max(...marks.map(mark => mark.step)) : null;
  const resumable = RESUMABLE_PHASES.has(job.phase);
  if (!marks.length && attempts.length < 2 && !resumable) {
    return null;
  }
  return (
    <section className="jp-TrainingCheckpoints">
      <div
        data-testid="jt-checkpoints"
        data-count={marks.length}
        data-latest-step={latest ?? undefined}
        title={marks.map(mark => `step ${mark.step}`).join(', ')}
      >
        {latest !== null ? (
          <>
            <span className="jp-TrainingCheckpoints-mark">◆</span>{' '}
            {`${marks.length} checkpoint${marks.length === 1 ? '' : 's'} · latest step ${latest}`}
          </>
        ) : (
          'No checkpoints saved: a resumed job starts from the beginning.'
        )}
      </div>
      {attempts.length > 1 && (
        <div data-testid="jt-attempts" className="jp-TrainingJobRow-meta">
          Attempts:{' '}
          {attempts
            .map(a => `${a.attempt + 1}: ${a.workers} worker${a.workers === 1 ? '' : 's'}`)
            .join(' · ')}
        </div>
      )}
    </section>
  );
}
