import React from 'react';

import { Handshake } from '../version';

/** What is wrong between this page and the server extension, and what to do about it. */
export function Banner({
  check,
  onRetry
}: {
  check: Handshake;
  onRetry: () => void;
}): JSX.Element | null {
  let title: string;
  let hint: React.ReactNode;
  switch (check.kind) {
    case 'missing':
      title = 'The jupyter-training server extension is not installed or not enabled';
      hint = (
        <>
          Install <code>jupyter-training</code> in the Jupyter server&apos;s environment, check{' '}
          <code>jupyter server extension list</code>, and restart the server.
        </>
      );
      break;
    case 'mismatch':
      title = `Version mismatch: server ${check.server}, frontend ${check.frontend}`;
      hint = 'Install the same jupyter-training version for both, restart the server and reload.';
      break;
    case 'unreachable':
      title = `The jupyter-training server extension did not answer: ${check.message}`;
      hint = <button onClick={onRetry}>Retry</button>;
      break;
    default:
      return null;
  }
  return (
    <div
      data-testid="jt-banner"
      role="alert"
      className={`jp-TrainingBanner jp-TrainingBanner-${check.kind}`}
    >
      <strong>{title}</strong>
      <div>{hint}</div>
    </div>
  );
}
