import React, { useLayoutEffect, useMemo, useRef, useState } from 'react';

import { LogLine } from '../progress';

/** The job's output, all ranks or one, scrolled to the end while "follow" is on. */
export function LogViewer({ lines, ranks }: { lines: LogLine[]; ranks: number }): JSX.Element {
  const [rank, setRank] = useState<number | null>(null);
  const [follow, setFollow] = useState(true);
  const view = useRef<HTMLPreElement>(null);
  const text = useMemo(
    () =>
      lines
        .filter(line => rank === null || line.rank === rank)
        .map(line =>
          rank === null && line.rank !== null ? `[rank ${line.rank}] ${line.text}` : line.text
        )
        .join('\n'),
    [lines, rank]
  );
  useLayoutEffect(() => {
    if (follow && view.current) {
      view.current.scrollTop = view.current.scrollHeight;
    }
  }, [text, follow]);
  return (
    <div className="jp-TrainingLog">
      <div className="jp-TrainingLog-toolbar">
        <select
          data-testid="jt-log-rank"
          aria-label="Ranks shown in the log"
          value={rank === null ? 'all' : String(rank)}
          onChange={event =>
            setRank(event.target.value === 'all' ? null : Number(event.target.value))
          }
        >
          <option value="all">all ranks</option>
          {Array.from({ length: ranks }, (_, r) => (
            <option key={r} value={String(r)}>
              rank {r}
            </option>
          ))}
        </select>
        <label>
          <input
            type="checkbox"
            data-testid="jt-log-follow"
            checked={follow}
            onChange={event => setFollow(event.target.checked)}
          />{' '}
          follow
        </label>
      </div>
      <pre data-testid="jt-log" ref={view} className="jp-TrainingLog-text">
        {text}
      </pre>
    </div>
  );
}
