import React, { useEffect, useMemo, useState } from 'react';

import { CompareRun, Comparison, ObjectiveMode, TrainingApi } from '../api';
import { formatDuration, formatNumber } from '../format';
import { ChartLine, lineColor } from '../series';
import { MetricChart } from './MetricChart';
import { allPositive, LogScaleToggle } from './MetricCharts';

/** Points per run and metric the compare view asks for. */
const COMPARE_POINTS = 500;

type Objective = { metric: string; mode: ObjectiveMode };

/** A param exactly as the run had it (`—` where it had none). */
function formatParam(value: unknown): string {
  if (value === undefined) {
    return '—';
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

function formatMetric(value: number | undefined): string {
  return value === undefined ? '—' : formatNumber(value);
}

/** Run names as the legend and columns show them: the id is added where names repeat. */
function runLabels(runs: CompareRun[]): Map<string, string> {
  const counts = new Map<string, number>();
  runs.forEach(run => counts.set(run.name, (counts.get(run.name) ?? 0) + 1));
  const label = (run: CompareRun) =>
    counts.get(run.name)! > 1 ? `${run.name} (${run.id.slice(0, 6)})` : run.name;
  return new Map(runs.map(run => [run.id, label(run)]));
}

function useComparison(
  api: TrainingApi,
  ids: string[],
  objective: Objective | null,
  refresh: string
): { comparison: Comparison | null; error: string | null } {
  const [comparison, setComparison] = useState<Comparison | null>(null);
  const [error, setError] = useState<string | null>(null);
  const key = ids.join(',');
  useEffect(() => {
    let current = true;
    api.compare(ids, objective, COMPARE_POINTS).then(
      answer => {
        if (current) {
          setComparison(answer);
          setError(null);
        }
      },
      reason => current && setError(reason.message ?? String(reason))
    );
    return () => {
      current = false;
    };
    // `key` stands for `ids`; `refresh` changes when a compared job does.
  }, [api, key, objective?.metric, objective?.mode, refresh]);
  return { comparison, error };
}

function ObjectivePicker({
  metrics,
  objective,
  onChange
}: {
  metrics: string[];
  objective: Objective | null;
  onChange: (objective: Objective) => void;
}): JSX.Element {
  const metric = objective?.metric ?? '';
  const mode = objective?.mode ?? 'min';
  return (
    <div className="jp-TrainingCompare-objective">
      <label>
        Best by{' '}
        <select
          data-testid="jt-compare-objective"
          value={metric}
          onChange={event => onChange({ metric: event.target.value, mode })}
        >
          {!metric && <option value="">—</option>}
          {metrics.map(name => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
      </label>
      <select
        data-testid="jt-compare-mode"
        aria-label="Lower or higher is better"
        value={mode}
        disabled={!metric}
        onChange={event => onChange({ metric, mode: event.target.value as ObjectiveMode })}
      >
        <option value="min">lowest</option>
        <option value="max">highest</option>
      </select>
    </div>
  );
}

function RunTable({
  comparison,
  labels,
  onlyDiffering
}: {
  comparison: Comparison;
  labels: Map<string, string>;
  onlyDiffering: boolean;
}): JSX.Element {
  const { runs, best, objective } = comparison;
  const differing = new Set(comparison.differing);
  const params = comparison.params.filter(name => !onlyDiffering || differing.has(name));
  const metrics = comparison.metrics.filter(name =>
    runs.some(run => run.metrics?.[name] !== undefined)
  );
  const bestClass = (run: CompareRun) => (run.id === best ? 'jp-mod-best' : undefined);
  return (
    <div className="jp-TrainingCompare-tableWrap">
      <table data-testid="jt-compare-table" className="jp-TrainingCompare-table">
        <thead>
          <tr>
            <th />
            {runs.map((run, i) => (
              <th
                key={run.id}
                data-testid="jt-compare-run"
                data-job-id={run.id}
                data-best={run.id === best}
                className={bestClass(run)}
                title={run.id}
              >
                <span className="jp-TrainingSwatch" style={{ background: lineColor(i) }} />
                {labels.get(run.id)}
                {run.id === best && (
                  <span data-testid="jt-compare-best" className="jp-TrainingBest">
                    ★ best
                  </span>
                )}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          <tr>
            <th>phase</th>
            {runs.map(run => (
              <td key={run.id}>{run.phase}</td>
            ))}
          </tr>
          <tr>
            <th>duration</th>
            {runs.map(run => (
              <td key={run.id}>{run.duration === null ? '—' : formatDuration(run.duration)}</td>
            ))}
          </tr>
        </tbody>
        <tbody data-testid="jt-compare-metrics">
          <tr className="jp-TrainingCompare-section">
            <th colSpan={runs.length + 1}>final metrics</th>
          </tr>
          {metrics.map(name => (
            <tr
              key={name}
              data-testid="jt-compare-metric-row"
              data-metric={name}
              className={name === objective?.metric ? 'jp-mod-objective' : undefined}
            >
              <th>{name}</th>
              {runs.map(run => (
                <td key={run.id} className={bestClass(run)}>
                  {formatMetric(run.metrics?.[name])}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
        <tbody data-testid="jt-compare-params">
          <tr className="jp-TrainingCompare-section">
            <th colSpan={runs.length + 1}>params</th>
          </tr>
          {params.map(name => (
            <tr
              key={name}
              data-testid="jt-compare-param-row"
              data-param={name}
              data-differing={differing.has(name)}
              className={differing.has(name) ? 'jp-mod-differing' : undefined}
              title={differing.has(name) ? 'Differs between the runs' : 'The same in every run'}
            >
              <th>{name}</th>
              {runs.map(run => (
                <td key={run.id}>{formatParam(run.params[name])}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/**
 * Runs side by side: a curve per run on one chart per metric, the params
 * (those that differ highlighted), the final metrics and the best run.
 */
export function CompareView({
  api,
  ids,
  refresh,
  onBack
}: {
  api: TrainingApi;
  ids: string[];
  /** Changes when a compared job changes phase: the view asks again. */
  refresh: string;
  onBack: () => void;
}): JSX.Element {
  const [objective, setObjective] = useState<Objective | null>(null);
  const [onlyDiffering, setOnlyDiffering] = useState(false);
  const [logScale, setLogScale] = useState(false);
  const [asked, setAsked] = useState(0);
  const { comparison, error } = useComparison(api, ids, objective, `${refresh}/${asked}`);
  const labels = useMemo(() => runLabels(comparison?.runs ?? []), [comparison]);
  const charts = useMemo(() => {
    if (!comparison) {
      return [];
    }
    const order = new Map(comparison.runs.map((run, i) => [run.id, i]));
    return Object.entries(comparison.curves).map(([name, curves]) => ({
      name,
      lines: curves.map(
        (curve): ChartLine => ({
          label:
            (labels.get(curve.id) ?? curve.name) + (curve.id === comparison.best ? ' ★' : ''),
          color: lineColor(order.get(curve.id) ?? 0),
          x: curve.x,
          y: curve.y
        })
      )
    }));
  }, [comparison, labels]);
  const metrics = comparison?.metrics ?? [];
  const positive = charts.every(chart => chart.lines.every(allPositive));

  return (
    <div data-testid="jt-compare" className="jp-TrainingCompare">
      <div className="jp-TrainingDetails-toolbar">
        <button data-testid="jt-compare-back" onClick={onBack}>
          ← Back
        </button>
        <button data-testid="jt-compare-refresh" onClick={() => setAsked(n => n + 1)}>
          Refresh
        </button>
        <span className="jp-TrainingCompare-title">Comparing {ids.length} runs</span>
      </div>
      {error && (
        <div className="jp-TrainingError" role="alert">
          {error}
        </div>
      )}
      {comparison && (
        <>
          <ObjectivePicker
            metrics={metrics}
            objective={objective ?? comparison.objective}
            onChange={setObjective}
          />
          <RunTable comparison={comparison} labels={labels} onlyDiffering={onlyDiffering} />
          <div className="jp-TrainingMetrics-toolbar">
            <label>
              <input
                type="checkbox"
                data-testid="jt-compare-only-differing"
                checked={onlyDiffering}
                onChange={event => setOnlyDiffering(event.target.checked)}
              />{' '}
              only params that differ
            </label>
            <LogScaleToggle
              checked={logScale && positive}
              disabled={!positive}
              onChange={setLogScale}
            />
          </div>
          {charts.map(chart => (
            <MetricChart
              key={chart.name}
              name={chart.name}
              lines={chart.lines}
              logScale={logScale && positive}
            />
          ))}
        </>
      )}
    </div>
  );
}
