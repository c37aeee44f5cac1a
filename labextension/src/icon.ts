import { LabIcon } from '@jupyterlab/ui-components';

/** Three connected workers: one job spread over several processes. */
const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <circle cx="12" cy="4.5" r="2.8"/>
    <circle cx="4.5" cy="18.5" r="2.8"/>
    <circle cx="19.5" cy="18.5" r="2.8"/>
    <path d="M11 7h2v4.1l5.3 5.2-1.4 1.4L12 12.9l-4.9 4.8-1.4-1.4L11 11.1z"/>
  </g>
</svg>`;

export const trainingIcon = new LabIcon({ name: 'jupyter-training:icon', svgstr: svg });
