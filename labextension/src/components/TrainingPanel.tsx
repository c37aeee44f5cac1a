import React, { useCallback, useEffect, useState } from 'react';

import { TrainingApi } from '../api';
import { useEventStream, useJobs, useStreamState } from '../hooks';
import { NotebookBridge } from '../notebook';
import { handshake, Handshake } from '../version';
import { Banner } from './Banner';
import { JobDetails } from './JobDetails';
import { JobList } from './JobList';
import { LaunchForm } from './LaunchForm';

const STREAM_LABELS = { connecting: 'connecting…', open: 'live', closed: 'reconnecting…' };

/** The sidebar: version banner, launch form and job list, or one job's details. */
export function TrainingPanel({
  api,
  notebooks
}: {
  api: TrainingApi;
  notebooks: NotebookBridge;
}): JSX.Element {
  const [check, setCheck] = useState<Handshake>({ kind: 'checking' });
  const recheck = useCallback(() => {
    setCheck({ kind: 'checking' });
    handshake(api).then(setCheck);
  }, [api]);
  useEffect(recheck, [recheck]);

  const usable = check.kind === 'ok' || check.kind === 'mismatch';
  const stream = useEventStream(api, usable);
  const streamState = useStreamState(stream);
  const jobs = useJobs(stream);
  const [selected, setSelected] = useState<string | null>(null);
  const job = jobs.find(candidate => candidate.id === selected);

  return (
    <div className="jp-TrainingPanel">
      <header className="jp-TrainingPanel-header">
        <h2>Training jobs</h2>
        {stream && (
          <span className={`jp-TrainingStream jp-TrainingStream-${streamState}`}>
            {STREAM_LABELS[streamState]}
          </span>
        )}
      </header>
      <Banner check={check} onRetry={recheck} />
      {usable && (
        // Hidden rather than unmounted while a job is open, so the form keeps its values.
        <div hidden={!!job}>
          <LaunchForm api={api} notebooks={notebooks} />
        </div>
      )}
      {usable &&
        (job ? (
          <JobDetails
            job={job}
            api={api}
            stream={stream}
            notebooks={notebooks}
            onBack={() => setSelected(null)}
          />
        ) : (
          <JobList jobs={jobs} onOpen={setSelected} />
        ))}
    </div>
  );
}
