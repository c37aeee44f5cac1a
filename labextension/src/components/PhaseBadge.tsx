import React from 'react';

import { Phase } from '../api';

export function PhaseBadge({ phase }: { phase: Phase }): JSX.Element {
  return (
    <span data-testid="jt-job-phase" className={`jp-TrainingPhase jp-TrainingPhase-${phase}`}>
      {phase}
    </span>
  );
}
