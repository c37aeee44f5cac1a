import React, { useCallback, useEffect, useState } from 'react';

import { TrainingApi } from '../api';
import { useEventStream, useJobs, useStreamState } from '../hooks';
import { NotebookBridge } from '../notebook';
import { handshake, Handshake } from '../version';
import { Banner } from './Banner';
import { CompareView } from './CompareView';
import { JobDetails } from './JobDetails';
import { isFiltered, JobFilter, JobFilters, NO_FILTER, useFilteredJobs } from './JobFilters';
import { JobList } from './JobList';
import { LaunchForm } from './LaunchForm';

const STREAM_LABELS = { connecting: 'connecting…', open: 'live', closed: 'reconnecting…' };

type View = { kind: 'list' } | { kind: 'job'; id: string } | { kind: 'compare'; ids: string[] };

/** Jobs ticked in the list, in the order they were ticked. */
function useSelection(): [string[], (id: string, on: boolean) => void, () => void] {
  const [selected, setSelected] = useState<string[]>([]);
  const toggle = useCallback(
    (id: string, on: boolean) =>
      setSelected(ids => {
        const others = ids.filter(other => other !== id);
        return on ? [...others, id] : others;
      }),
    []
  );
  return [selected, toggle, () => setSelected([])];
}

/** The sidebar: banner, launch form, filters and jobs; or one job's details; or runs compared. */
export function TrainingPanel({
  api,
  notebooks
}: {
  api: TrainingApi;
  notebooks: NotebookBridge;
}): JSX.Element {
  const [check, setCheck] = useState<Handshake>({ kind: 'checking' });
  const recheck = useCallback(() => {
    setCheck({ kind: 'checking' });
    handshake(api).then(setCheck);
  }, [api]);
  useEffect(recheck, [recheck]);

  const usable = check.kind === 'ok' || check.kind === 'mismatch';
  const stream = useEventStream(api, usable);
  const streamState = useStreamState(stream);
  const jobs = useJobs(stream);
  const [filter, setFilter] = useState<JobFilter>(NO_FILTER);
  const listed = useFilteredJobs(api, jobs, filter);
  const [selected, toggle, clearSelection] = useSelection();
  const [view, setView] = useState<View>({ kind: 'list' });
  const known = (id: string) =>
    jobs.find(candidate => candidate.id === id) ??
    listed.jobs.find(candidate => candidate.id === id);
  const job = view.kind === 'job' ? known(view.id) : undefined;
  const comparing = view.kind === 'compare' ? view.ids : null;
  const showList = !job && !comparing;
  const toList = () => setView({ kind: 'list' });
  const comparedPhases = (comparing ?? []).map(id => known(id)?.phase).join(',');

  return (
    <div className="jp-TrainingPanel">
      <header className="jp-TrainingPanel-header">
        <h2>Training jobs</h2>
        {stream && (
          <span className={`jp-TrainingStream jp-TrainingStream-${streamState}`}>
            {STREAM_LABELS[streamState]}
          </span>
        )}
      </header>
      <Banner check={check} onRetry={recheck} />
      {usable && (
        // Hidden rather than unmounted while a job is open, so the form keeps its values.
        <div hidden={!showList}>
          <LaunchForm api={api} notebooks={notebooks} />
        </div>
      )}
      {usable && job && (
        <JobDetails job={job} api={api} stream={stream} notebooks={notebooks} onBack={toList} />
      )}
      {usable && comparing && (
        <CompareView api={api} ids={comparing} refresh={comparedPhases} onBack={toList} />
      )}
      {usable && showList && (
        <>
          <JobFilters filter={filter} jobs={[...jobs, ...listed.jobs]} onChange={setFilter} />
          {selected.length > 0 && (
            <div className="jp-TrainingSelection">
              <button
                data-testid="jt-compare-button"
                className="jp-mod-accept"
                disabled={selected.length < 2}
                title={selected.length < 2 ? 'Tick two jobs or more' : 'Compare the ticked jobs'}
                onClick={() => setView({ kind: 'compare', ids: selected })}
              >
                Compare {selected.length}
              </button>
              <button data-testid="jt-compare-clear" onClick={clearSelection}>
                Clear selection
              </button>
            </div>
          )}
          {listed.error && (
            <div className="jp-TrainingError" role="alert">
              {listed.error}
            </div>
          )}
          <JobList
            jobs={listed.jobs}
            selected={new Set(selected)}
            empty={isFiltered(filter) ? 'No jobs match the filters.' : undefined}
            onOpen={id => setView({ kind: 'job', id })}
            onSelect={toggle}
          />
        </>
      )}
    </div>
  );
}
