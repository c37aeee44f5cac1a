import React, { useEffect, useMemo, useRef } from 'react';
import uPlot from 'uplot';

import { formatNumber } from '../format';
import { ChartLine } from '../series';

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

const HEIGHT = 150;

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

function tickLabel(value: number): string {
  if (value === 0) {
    return '0';
  }
  const size = Math.abs(value);
  return size >= 1e5 || size < 1e-3 ? value.toExponential(0) : formatNumber(value);
}

function chartOptions(labels: string[], logScale: boolean, width: number): uPlot.Options {
  const text = cssVar('--jp-ui-font-color2', '#616161');
  const grid = cssVar('--jp-border-color2', '#e0e0e0');
  const font = `10px ${cssVar('--jp-ui-font-family', 'sans-serif')}`;
  const axis = { stroke: text, font, grid: { stroke: grid, width: 1 }, ticks: { size: 3 } };
  return {
    width,
    height: HEIGHT,
    legend: { live: false },
    cursor: { points: { size: 5 } },
    scales: { x: { time: false }, y: { distr: logScale ? 3 : 1 } },
    axes: [
      { ...axis, size: 28 },
      { ...axis, size: 46, values: (_, ticks) => ticks.map(tickLabel) }
    ],
    series: [
      { label: 'step' },
      ...labels.map((label, i) => ({
        label,
        stroke: lineColor(i),
        width: 1.5,
        spanGaps: true,
        points: { show: false }
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
  logScale = false
}: {
  name: string;
  lines: ChartLine[];
  logScale?: boolean;
}): JSX.Element {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const labels = lines.map(line => line.label);
  const structure = JSON.stringify([labels, logScale]);
  const data = useMemo(() => (lines.length ? alignedData(lines) : null), [lines]);
  const dataRef = useRef(data);
  dataRef.current = data;

  useEffect(() => {
    const element = host.current;
    if (!element || !dataRef.current) {
      return;
    }
    const width = () => Math.max(120, element.clientWidth);
    const chart = new uPlot(chartOptions(labels, logScale, width()), dataRef.current, element);
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

  const points = Math.max(0, ...lines.map(line => line.x.length));
  return (
    <figure
      data-testid="jt-metric-chart"
      data-metric={name}
      data-series={lines.length}
      data-points={points}
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
