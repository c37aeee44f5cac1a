import React, { useEffect, useMemo, useState } from 'react';

import { Job, Phase, TrainingApi } from '../api';

export interface JobFilter {
  /** A case-insensitive substring, or a glob with `*` / `?` (the server decides). */
  name: string;
  phase: '' | Phase;
  notebook: string;
  /** `created`, `metrics.NAME` or `params.NAME`. */
  sort: string;
  descending: boolean;
}

export const NO_FILTER: JobFilter = {
  name: '',
  phase: '',
  notebook: '',
  sort: 'created',
  descending: false
};

const PHASES: Phase[] = [
  'Pending',
  'Running',
  'Restarting',
  'Succeeded',
  'Failed',
  'Cancelled',
  'Pruned'
];
/** Jobs one filtered listing shows. */
const FILTERED_LIMIT = 200;
const DEBOUNCE_MS = 250;

export function isFiltered(filter: JobFilter): boolean {
  return (
    filter.name.trim() !== '' ||
    filter.phase !== '' ||
    filter.notebook !== '' ||
    filter.sort !== NO_FILTER.sort
  );
}

/** The `sort` query parameter: none for the default (newest first). */
export function sortParam(filter: JobFilter): string | undefined {
  if (filter.sort === NO_FILTER.sort) {
    return undefined;
  }
  return (filter.descending ? '-' : '') + filter.sort;
}

/**
 * The jobs `filter` selects, in its order. Unfiltered: the live list. Filtered:
 * the server's answer (asked again when a job appears or changes phase), each
 * job shown in its freshest live version.
 */
export function useFilteredJobs(
  api: TrainingApi,
  live: Job[],
  filter: JobFilter
): { jobs: Job[]; error: string | null } {
  const [found, setFound] = useState<Job[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const filtered = isFiltered(filter);
  const changes = live.map(job => `${job.id}:${job.phase}`).join(',');

  useEffect(() => {
    if (!filtered) {
      setFound(null);
      setError(null);
      return;
    }
    let current = true;
    const timer = window.setTimeout(() => {
      api
        .listJobs({
          name: filter.name.trim(),
          phase: filter.phase,
          notebook: filter.notebook,
          sort: sortParam(filter),
          limit: FILTERED_LIMIT
        })
        .then(
          page => {
            if (current) {
              setFound(page.jobs);
              setError(null);
            }
          },
          reason => current && setError(reason.message ?? String(reason))
        );
    }, DEBOUNCE_MS);
    return () => {
      current = false;
      window.clearTimeout(timer);
    };
  }, [api, filtered, filter, changes]);

  const jobs = useMemo(() => {
    if (!filtered || found === null) {
      return filtered ? [] : live;
    }
    const fresh = new Map(live.map(job => [job.id, job]));
    return found.map(job => fresh.get(job.id) ?? job);
  }, [filtered, found, live]);
  return { jobs, error };
}

function namesIn(jobs: Job[], field: 'metrics' | 'params'): string[] {
  const names = new Set<string>();
  jobs.forEach(job => Object.keys(job[field] ?? {}).forEach(name => names.add(name)));
  return [...names].sort();
}

function basename(path: string): string {
  return path.split('/').pop() || path;
}

/** Name, phase and notebook filters and the sort order of the job list. */
export function JobFilters({
  filter,
  jobs,
  onChange
}: {
  filter: JobFilter;
  /** The jobs the options come from (metric, param and notebook names). */
  jobs: Job[];
  onChange: (filter: JobFilter) => void;
}): JSX.Element {
  const set = (change: Partial<JobFilter>) => onChange({ ...filter, ...change });
  const notebooks = [...new Set(jobs.map(job => job.notebook).filter(Boolean) as string[])].sort();
  if (filter.notebook && !notebooks.includes(filter.notebook)) {
    notebooks.push(filter.notebook);
  }
  const metrics = namesIn(jobs, 'metrics');
  const params = namesIn(jobs, 'params');
  const sortKnown = [
    NO_FILTER.sort,
    ...metrics.map(m => `metrics.${m}`),
    ...params.map(p => `params.${p}`)
  ];
  const byCreated = filter.sort === NO_FILTER.sort;
  return (
    <div className="jp-TrainingFilters" role="search">
      <input
        data-testid="jt-filter-name"
        type="search"
        aria-label="Filter jobs by name"
        placeholder="Filter by name (or glob: lr-*)"
        value={filter.name}
        onChange={event => set({ name: event.target.value })}
      />
      <div className="jp-TrainingFilters-row">
        <select
          data-testid="jt-filter-phase"
          aria-label="Filter jobs by phase"
          value={filter.phase}
          onChange={event => set({ phase: event.target.value as JobFilter['phase'] })}
        >
          <option value="">any phase</option>
          {PHASES.map(phase => (
            <option key={phase} value={phase}>
              {phase}
            </option>
          ))}
        </select>
        <select
          data-testid="jt-filter-notebook"
          aria-label="Filter jobs by notebook"
          value={filter.notebook}
          onChange={event => set({ notebook: event.target.value })}
        >
          <option value="">any notebook</option>
          {notebooks.map(path => (
            <option key={path} value={path} title={path}>
              {basename(path)}
            </option>
          ))}
        </select>
      </div>
      <div className="jp-TrainingFilters-row">
        <select
          data-testid="jt-sort"
          aria-label="Sort jobs by"
          value={filter.sort}
          onChange={event => set({ sort: event.target.value })}
        >
          <option value="created">newest first</option>
          {metrics.length > 0 && (
            <optgroup label="final metric">
              {metrics.map(name => (
                <option key={name} value={`metrics.${name}`}>
                  {name}
                </option>
              ))}
            </optgroup>
          )}
          {params.length > 0 && (
            <optgroup label="param">
              {params.map(name => (
                <option key={name} value={`params.${name}`}>
                  {name}
                </option>
              ))}
            </optgroup>
          )}
          {!sortKnown.includes(filter.sort) && <option value={filter.sort}>{filter.sort}</option>}
        </select>
        <button
          data-testid="jt-sort-order"
          data-order={filter.descending ? 'desc' : 'asc'}
          disabled={byCreated}
          title={byCreated ? 'Newest first' : 'Reverse the order (jobs without the value go last)'}
          onClick={() => set({ descending: !filter.descending })}
        >
          {filter.descending ? '↓ desc' : '↑ asc'}
        </button>
        {isFiltered(filter) && (
          <button data-testid="jt-filter-clear" onClick={() => onChange(NO_FILTER)}>
            Clear
          </button>
        )}
      </div>
    </div>
  );
}
