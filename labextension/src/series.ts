/**
 * Metric curves held in the browser, with bounded memory: the server sends a
 * downsampled history (`max_points` a rank), live `report` events append to
 * it, and a curve that grows past {@link MAX_CHART_POINTS} is thinned.
 */
import { JobEvent, MetricHistory, MetricIndex, RankChoice } from './api';

/** Points a rank's curve is fetched with. */
export const FETCH_POINTS = 1000;
/** A curve past this many points is thinned to half (its last point always kept). */
export const MAX_CHART_POINTS = 2000;
/** Live points kept for ranks or metrics not charted yet (a fetch picks them up). */
const RECENT_POINTS = 4096;

/** Line colours, one per rank or run, in order (Tableau 10: distinct, colour-blind friendly). */
export const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf'
];

export function lineColor(index: number): string {
  return PALETTE[index % PALETTE.length];
}

export interface Curve {
  x: number[];
  y: number[];
}

/** One line of a chart. */
export interface ChartLine extends Curve {
  label: string;
  /** A CSS colour; by default the line's place in the palette. */
  color?: string;
}

/** Keep every other point (and the last), so the curve's shape survives at half the size. */
export function thin(curve: Curve): void {
  const last = curve.x.length - 1;
  let kept = 0;
  for (let i = 0; i <= last; i++) {
    if (i % 2 === 0 || i === last) {
      curve.x[kept] = curve.x[i];
      curve.y[kept] = curve.y[i];
      kept++;
    }
  }
  curve.x.length = kept;
  curve.y.length = kept;
}

/** Append one point; thin the curve once it passes `limit`. */
export function appendPoint(curve: Curve, x: number, y: number, limit = MAX_CHART_POINTS): void {
  curve.x.push(x);
  curve.y.push(y);
  if (curve.x.length > limit) {
    thin(curve);
  }
}

/** Does `choice` chart `rank`? */
export function shows(choice: RankChoice, rank: number): boolean {
  return choice === 'all' || choice === rank;
}

interface LivePoint {
  name: string;
  rank: number;
  /** The point's place in its rank's history (0 = the first point that rank reported). */
  index: number;
  step: number | null;
  value: number;
}

interface TrackedCurve extends Curve {
  /** Points of the rank's history this curve stands for (fetched + appended). */
  known: number;
}

const key = (name: string, rank: number) => `${rank}\u0000${name}`;

/**
 * A job's curves for one rank choice. The subscription replays the job's
 * events from its start, so the n-th report of a rank for a metric is that
 * history's point n: a live point is new exactly when n is past what the
 * fetched history (and earlier live points) already hold. That also makes a
 * replay after a reconnect harmless.
 */
export class LiveMetrics {
  /** Metric names in the order the job reported them. */
  get names(): string[] {
    return [...this._names];
  }

  /** Ranks seen so far (fetched or live). */
  get ranks(): number[] {
    return [...this._ranks].sort((a, b) => a - b);
  }

  /** The metrics and ranks the server has stored (its metric index). */
  learn(index: MetricIndex): void {
    for (const metric of index.metrics) {
      this._names.add(metric.name);
      Object.keys(metric.ranks).forEach(rank => this._ranks.add(Number(rank)));
    }
  }

  /** Start charting `choice` afresh: a fetch for it is under way. */
  beginFetch(choice: RankChoice): void {
    this._choice = choice;
    this._fetching = true;
    this._curves.clear();
  }

  /** The fetched histories of `choice`; then the live points newer than them. */
  applyFetch(choice: RankChoice, histories: MetricHistory[]): void {
    if (choice !== this._choice) {
      return; // an answer for a choice the user has left
    }
    for (const history of histories) {
      this._names.add(history.name);
      for (const series of history.series) {
        this._ranks.add(series.rank);
        if (shows(choice, series.rank)) {
          this._curves.set(key(history.name, series.rank), {
            x: [...series.x],
            y: [...series.y],
            known: series.points
          });
        }
      }
    }
    this._fetching = false;
    for (const point of this._recent) {
      this._apply(point);
    }
  }

  /** The replay starts again from the job's first event (after a reconnect). */
  restartReplay(): void {
    this._seen.clear();
  }

  /** Take one event of the job; true when a charted curve changed. */
  addEvent(event: JobEvent): boolean {
    if (event.kind !== 'report' || event.rank === null) {
      return false;
    }
    const metrics: Record<string, unknown> = event.data.metrics ?? {};
    const step = typeof event.data.step === 'number' ? event.data.step : null;
    let changed = false;
    for (const [name, value] of Object.entries(metrics)) {
      if (typeof value !== 'number') {
        continue;
      }
      const id = key(name, event.rank);
      const index = this._seen.get(id) ?? 0;
      this._seen.set(id, index + 1);
      const point = { name, rank: event.rank, index, step, value };
      this._remember(point);
      changed = this._apply(point) || changed;
    }
    return changed;
  }

  /** The charted lines of metric `name`, one per rank shown. */
  lines(name: string): ChartLine[] {
    return this.ranks
      .filter(rank => shows(this._choice, rank))
      .map(rank => ({ rank, curve: this._curves.get(key(name, rank)) }))
      .filter((line): line is { rank: number; curve: TrackedCurve } => !!line.curve)
      .map(({ rank, curve }) => ({
        label: `rank ${rank}`,
        color: lineColor(rank), // a rank keeps its colour whichever ranks are shown
        x: curve.x,
        y: curve.y
      }));
  }

  private _remember(point: LivePoint): void {
    this._recent.push(point);
    if (this._recent.length > RECENT_POINTS) {
      this._recent.splice(0, this._recent.length - RECENT_POINTS / 2);
    }
  }

  private _apply(point: LivePoint): boolean {
    if (this._fetching || !shows(this._choice, point.rank)) {
      return false;
    }
    this._names.add(point.name);
    this._ranks.add(point.rank);
    const id = key(point.name, point.rank);
    let curve = this._curves.get(id);
    if (!curve) {
      // A metric or rank that began after the fetch: it starts at its first point.
      curve = { x: [], y: [], known: 0 };
      this._curves.set(id, curve);
    }
    if (point.index < curve.known) {
      return false;
    }
    // The server's x: the step, or the point's index where no step was reported.
    appendPoint(curve, point.step ?? point.index, point.value);
    curve.known = point.index + 1;
    return true;
  }

  private _choice: RankChoice = 0;
  private _fetching = true;
  private _names = new Set<string>();
  private _ranks = new Set<number>();
  private _curves = new Map<string, TrackedCurve>();
  private _seen = new Map<string, number>();
  private _recent: LivePoint[] = [];
}
