import React from 'react';

import { formatMetrics } from '../format';
import { RankStatus } from '../progress';

function RankProgress({ status }: { status: RankStatus }): JSX.Element | null {
  if (status.step === null) {
    return null;
  }
  if (!status.total) {
    return <span>step {status.step}</span>;
  }
  return (
    <span className="jp-TrainingRankProgress">
      <progress max={status.total} value={status.step} /> {status.step}/{status.total}
    </span>
  );
}

function describeState(status: RankStatus): string {
  if (status.state !== 'exited' || status.exitCode === null) {
    return status.state;
  }
  return `exited ${status.exitCode}${status.reason ? ` (${status.reason})` : ''}`;
}

export function RankTable({ ranks }: { ranks: RankStatus[] }): JSX.Element {
  return (
    <table className="jp-TrainingRankTable">
      <tbody>
        {ranks.map(status => (
          <tr
            key={status.rank}
            data-testid="jt-rank-row"
            data-rank={status.rank}
            data-state={status.state}
            title={status.message ?? ''}
          >
            <th>rank {status.rank}</th>
            <td className={`jp-TrainingRankState jp-TrainingRankState-${status.state}`}>
              {describeState(status)}
            </td>
            <td>
              <RankProgress status={status} />
              <div className="jp-TrainingRankMetrics">{formatMetrics(status.metrics, 4)}</div>
              {status.error && <div className="jp-TrainingError">{status.error}</div>}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
