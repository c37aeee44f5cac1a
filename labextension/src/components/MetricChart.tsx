import React, { useEffect, useMemo, useRef } from 'react';
import uPlot from 'uplot';

import { ChartLine, lineColor } from '../series';

const HEIGHT = 150;

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

/** An axis tick (null: a log axis' unlabelled minor tick). */
function tickLabel(value: number | null): string {
  if (value === null) {
    return '';
  }
  if (value === 0) {
    return '0';
  }
  const size = Math.abs(value);
  return size >= 1e5 || size < 1e-3 ? value.toExponential(0) : String(Number(value.toPrecision(4)));
}

/** A log axis' ticks: whole decades, at most about five of them. */
function decadeSplits(_: uPlot, __: number, min: number, max: number): number[] {
  const low = Math.ceil(Math.log10(min) - 1e-9);
  const high = Math.floor(Math.log10(max) + 1e-9);
  const step = Math.max(1, Math.ceil((high - low) / 4));
  const splits: number[] = [];
  for (let exponent = high; exponent >= low; exponent -= step) {
    splits.unshift(10 ** exponent);
  }
  return splits;
}

/** Dashed vertical lines at the steps in `marks()` (checkpoints), under the curves. */
function markersPlugin(marks: () => readonly number[]): uPlot.Plugin {
  return {
    hooks: {
      drawAxes: [
        (u: uPlot) => {
          const steps = marks();
          const { top, height } = u.bbox;
          const low = u.scales.x.min;
          const high = u.scales.x.max;
          if (!steps.length || low === undefined || high === undefined) {
            return;
          }
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = cssVar('--jp-warn-color1', '#f57c00');
          ctx.fillStyle = ctx.strokeStyle;
          ctx.lineWidth = Math.max(1, devicePixelRatio);
          ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
          for (const step of steps) {
            if (step < low || step > high) {
              continue;
            }
            const x = Math.round(u.valToPos(step, 'x', true));
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            const size = 3 * devicePixelRatio; // a diamond on the x axis
            ctx.beginPath();
            ctx.moveTo(x, top + height - size);
            ctx.lineTo(x + size, top + height);
            ctx.lineTo(x, top + height + size);
            ctx.lineTo(x - size, top + height);
            ctx.fill();
          }
          ctx.restore();
        }
      ]
    }
  };
}

function chartOptions(
  lines: ChartLine[],
  logScale: boolean,
  width: number,
  marks: () => readonly number[]
): uPlot.Options {
  const text = cssVar('--jp-ui-font-color2', '#616161');
  const grid = cssVar('--jp-border-color2', '#e0e0e0');
  const font = `10px ${cssVar('--jp-ui-font-family', 'sans-serif')}`;
  const axis = { stroke: text, font, grid: { stroke: grid, width: 1 }, ticks: { size: 3 } };
  return {
    width,
    height: HEIGHT,
    legend: { live: false },
    plugins: [markersPlugin(marks)],
    cursor: { points: { size: 5 } },
    scales: { x: { time: false }, y: { distr: logScale ? 3 : 1 } },
    axes: [
      { ...axis, size: 28 },
      {
        ...axis,
        size: 46,
        values: (_, ticks) => ticks.map(tickLabel),
        ...(logScale ? { splits: decadeSplits, filter: (_, splits) => splits } : {})
      }
    ],
    series: [
      { label: 'step' },
      ...lines.map((line, i) => ({
        label: line.label,
        stroke: line.color ?? lineColor(i),
        width: 1.5,
        spanGaps: true // uPlot shows the points themselves while they are few
      }))
    ]
  };
}

/** Every line on one shared x axis (the union of their steps), as uPlot wants it. */
function alignedData(lines: ChartLine[]): uPlot.AlignedData {
  return uPlot.join(lines.map(line => [line.x, line.y] as uPlot.AlignedData));
}

/**
 * One metric as a uPlot line chart, a line per rank or run with a legend.
 * The plot is built once per set of lines and fed new data in place.
 */
export function MetricChart({
  name,
  lines,
  logScale = false,
  marks = []
}: {
  name: string;
  lines: ChartLine[];
  logScale?: boolean;
  /** Steps marked on the x axis with a dashed line (a job's checkpoints). */
  marks?: readonly number[];
}): JSX.Element {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const structure = JSON.stringify([lines.map(line => [line.label, line.color]), logScale]);
  const data = useMemo(() => (lines.length ? alignedData(lines) : null), [lines]);
  const latest = useRef({ data, lines, marks });
  latest.current = { data, lines, marks };
  const markKey = marks.join(',');

  useEffect(() => {
    const element = host.current;
    const { data: initial, lines: initialLines } = latest.current;
    if (!element || !initial) {
      return;
    }
    const width = () => Math.max(120, element.clientWidth);
    const options = chartOptions(initialLines, logScale, width(), () => latest.current.marks);
    const chart = new uPlot(options, initial, element);
    plot.current = chart;
    const resize = new ResizeObserver(() => chart.setSize({ width: width(), height: HEIGHT }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      chart.destroy();
      plot.current = null;
    };
    // Rebuilt only when the lines or the scale change; data flows in below.
  }, [structure, data === null]);

  useEffect(() => {
    if (data && plot.current) {
      plot.current.setData(data);
    }
  }, [data]);

  useEffect(() => {
    plot.current?.redraw(false, false); // new checkpoints: the same data, new markers
  }, [markKey]);

  const points = Math.max(0, ...lines.map(line => line.x.length));
  return (
    <figure
      data-testid="jt-metric-chart"
      data-metric={name}
      data-series={lines.length}
      data-points={points}
      data-checkpoints={markKey || undefined}
      className="jp-TrainingChart"
    >
      <figcaption className="jp-TrainingChart-title">{name}</figcaption>
      {data ? (
        <div ref={host} className="jp-TrainingChart-plot" />
      ) : (
        <div className="jp-TrainingHint">no points yet</div>
      )}
    </figure>
  );
}
