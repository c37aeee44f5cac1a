import React, { useEffect, useMemo, useRef, useState } from 'react';

import { JobEventStream, RankChoice, ServerMessage, StreamState, TrainingApi } from '../api';
import { ChartLine, FETCH_POINTS, LiveMetrics } from '../series';
import { MetricChart } from './MetricChart';

/** Charts redraw at most this often while points stream in. */
const REDRAW_MS = 250;

/**
 * `jobId`'s curves for `choice`: the stored history by REST (downsampled), then
 * the live report events of the job's subscription. `revision` counts redraws.
 */
function useLiveMetrics(
  api: TrainingApi,
  stream: JobEventStream | null,
  jobId: string,
  choice: RankChoice
): { model: LiveMetrics; revision: number; error: string | null } {
  const model = useMemo(() => new LiveMetrics(), [jobId]);
  const [revision, setRevision] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const timer = useRef(0);
  const redraw = useMemo(
    () => () => {
      if (!timer.current) {
        timer.current = window.setTimeout(() => {
          timer.current = 0;
          setRevision(r => r + 1);
        }, REDRAW_MS);
      }
    },
    []
  );
  useEffect(() => () => window.clearTimeout(timer.current), []);

  useEffect(() => {
    if (!stream) {
      return;
    }
    const onMessage = (_: JobEventStream, message: ServerMessage) => {
      if (message.type === 'event' && message.job_id === jobId && model.addEvent(message.event)) {
        redraw();
      }
    };
    const onState = (_: JobEventStream, state: StreamState) =>
      state === 'open' && model.restartReplay();
    stream.messages.connect(onMessage);
    stream.stateChanged.connect(onState);
    return () => {
      stream.messages.disconnect(onMessage);
      stream.stateChanged.disconnect(onState);
    };
  }, [stream, jobId, model, redraw]);

  useEffect(() => {
    let current = true;
    model.beginFetch(choice);
    setError(null);
    (async () => {
      const index = await api.metricIndex(jobId);
      model.learn(index);
      return Promise.all(
        index.metrics.map(metric => api.metricHistory(jobId, metric.name, choice, FETCH_POINTS))
      );
    })().then(
      histories => {
        if (current) {
          model.applyFetch(choice, histories);
          setRevision(r => r + 1);
        }
      },
      reason => {
        if (current) {
          model.applyFetch(choice, []); // live points still chart
          setError(`Metric history unavailable: ${reason.message ?? reason}`);
          setRevision(r => r + 1);
        }
      }
    );
    return () => {
      current = false;
    };
  }, [api, jobId, choice, model]);

  return { model, revision, error };
}

/** A live chart per metric of one job; rank 0 by default, any rank or all ranks overlaid. */
export function MetricCharts({
  api,
  stream,
  jobId,
  ranks,
  checkpoints
}: {
  api: TrainingApi;
  stream: JobEventStream | null;
  jobId: string;
  /** Ranks the job has (its world size). */
  ranks: number;
  /** Steps the job saved checkpoints at: marked on every chart's x axis. */
  checkpoints?: number[];
}): JSX.Element | null {
  const [choice, setChoice] = useState<RankChoice>(0);
  const [logScale, setLogScale] = useState(false);
  const { model, revision, error } = useLiveMetrics(api, stream, jobId, choice);
  const charts = useMemo(
    () => model.names.map(name => ({ name, lines: model.lines(name) })),
    [model, revision, choice]
  );
  const rankCount = Math.max(ranks, ...model.ranks.map(rank => rank + 1));
  const positive = charts.every(chart => chart.lines.every(allPositive));
  if (!charts.length && !error) {
    return null;
  }
  return (
    <section data-testid="jt-metrics" className="jp-TrainingMetrics">
      <div className="jp-TrainingMetrics-toolbar">
        <select
          data-testid="jt-metric-rank"
          aria-label="Ranks charted"
          value={String(choice)}
          onChange={event =>
            setChoice(event.target.value === 'all' ? 'all' : Number(event.target.value))
          }
        >
          {Array.from({ length: rankCount }, (_, r) => (
            <option key={r} value={String(r)}>
              rank {r}
            </option>
          ))}
          <option value="all">all ranks</option>
        </select>
        <LogScaleToggle
          checked={logScale && positive}
          disabled={!positive}
          onChange={setLogScale}
        />
      </div>
      {error && <div className="jp-TrainingHint">{error}</div>}
      {charts.map(chart => (
        <MetricChart
          key={chart.name}
          name={chart.name}
          lines={chart.lines}
          logScale={logScale && positive}
          marks={checkpoints}
        />
      ))}
    </section>
  );
}

export function allPositive(line: ChartLine): boolean {
  return line.y.every(value => value > 0);
}

export function LogScaleToggle({
  checked,
  disabled,
  onChange
}: {
  checked: boolean;
  disabled: boolean;
  onChange: (checked: boolean) => void;
}): JSX.Element {
  return (
    <label title={disabled ? 'A log scale needs every value above 0' : 'Logarithmic y axis'}>
      <input
        type="checkbox"
        data-testid="jt-chart-log"
        checked={checked}
        disabled={disabled}
        onChange={event => onChange(event.target.checked)}
      />{' '}
      log y
    </label>
  );
}
