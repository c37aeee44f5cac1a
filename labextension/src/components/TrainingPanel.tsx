import React, { useCallback, useEffect, useState } from 'react';

import { Job, TrainingApi } from '../api';
import { useEventStream, useJobs, useStreamState, useSweeps } from '../hooks';
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

/** Sweeps opened in the list (kept while a trial's details are shown). */
function useExpanded(): [ReadonlySet<string>, (id: string, open: boolean) => void] {
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(new Set());
  const toggle = useCallback(
    (id: string, open: boolean) =>
      setExpanded(ids => {
        const next = new Set(ids);
        if (open) {
          next.add(id);
        } else {
          next.delete(id);
        }
        return next;
      }),
    []
  );
  return [expanded, toggle];
}

/** Trial jobs fetched for opened sweeps: older than the stream's list, still openable. */
function useFetchedTrials(): [ReadonlyMap<string, Job>, (jobs: Job[]) => void] {
  const [trials, setTrials] = useState<ReadonlyMap<string, Job>>(new Map());
  const add = useCallback(
    (jobs: Job[]) => setTrials(known => new Map([...known, ...jobs.map(j => [j.id, j] as const)])),
    []
  );
  return [trials, add];
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
  const sweeps = useSweeps(api, stream);
  const [filter, setFilter] = useState<JobFilter>(NO_FILTER);
  const listed = useFilteredJobs(api, jobs, filter);
  const [selected, toggle, clearSelection] = useSelection();
  const [expanded, expand] = useExpanded();
  const [trialJobs, addTrialJobs] = useFetchedTrials();
  const [view, setView] = useState<View>({ kind: 'list' });
  const known = (id: string) =>
    jobs.find(candidate => candidate.id === id) ??
    listed.jobs.find(candidate => candidate.id === id) ??
    trialJobs.get(id);
  const job = view.kind === 'job' ? known(view.id) : undefined;
  const comparing = view.kind === 'compare' ? view.ids : null;
  const showList = !job && !comparing;
  const toList = () => setView({ kind: 'list' });
  const comparedPhases = (comparing ?? []).map(id => known(id)?.phase).join(',');
  /** Open a job's details; one the stream has not listed (an old job of a resume chain) is
   * fetched. */
  const openJob = (id: string) => {
    setView({ kind: 'job', id });
    if (!known(id)) {
      api.getJob(id).then(
        detail => addTrialJobs([detail]),
        () => undefined
      );
    }
  };

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
        <JobDetails
          // Its own state per job (a Resume under way, an error): a new one for another job.
          key={job.id}
          job={job}
          api={api}
          stream={stream}
          notebooks={notebooks}
          known={jobs}
          onOpen={openJob}
          onBack={toList}
        />
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
            api={api}
            jobs={listed.jobs}
            // Filtered or sorted, trials are runs like any other: listed flat.
            sweeps={isFiltered(filter) ? [] : sweeps}
            selected={new Set(selected)}
            expanded={expanded}
            empty={isFiltered(filter) ? 'No jobs match the filters.' : undefined}
            onOpen={id => setView({ kind: 'job', id })}
            onSelect={toggle}
            onExpand={expand}
            onTrialJobs={addTrialJobs}
          />
        </>
      )}
    </div>
  );
}
