import React, { useEffect, useRef, useState } from 'react';

import {
  FINISHED_PHASES,
  Job,
  JobDetail,
  JobEventStream,
  RESUMABLE_PHASES,
  ServerMessage,
  StreamState,
  TrainingApi
} from '../api';
import { describeResources, elapsed, scheduledBy, worldSize } from '../format';
import { useNow } from '../hooks';
import { NotebookBridge } from '../notebook';
import { emptyProgress, foldEvent, JobProgress } from '../progress';
import { JobCheckpoints, JobLineage, lineageOf } from './JobLineage';
import { LogViewer } from './LogViewer';
import { MetricCharts } from './MetricCharts';
import { PhaseBadge } from './PhaseBadge';
import { RankTable } from './RankTable';

/** Fold `jobId`'s subscribed events; the server replays them from the start on (re)subscribe. */
function useJobProgress(
  stream: JobEventStream | null,
  jobId: string,
  workers: number
): JobProgress {
  const [progress, setProgress] = useState(() => emptyProgress(workers));
  const workersRef = useRef(workers);
  workersRef.current = workers;
  useEffect(() => {
    if (!stream) {
      return;
    }
    const reset = () => setProgress(emptyProgress(workersRef.current));
    const onMessage = (_: JobEventStream, message: ServerMessage) => {
      if (message.type === 'event' && message.job_id === jobId) {
        setProgress(current => foldEvent(current, message.event));
      }
    };
    const onState = (_: JobEventStream, state: StreamState) => state === 'open' && reset();
    stream.messages.connect(onMessage);
    stream.stateChanged.connect(onState);
    reset();
    stream.subscribe(jobId);
    return () => {
      stream.subscribe(null);
      stream.messages.disconnect(onMessage);
      stream.stateChanged.disconnect(onState);
    };
  }, [stream, jobId]);
  return progress;
}

export function JobDetails({
  job,
  api,
  stream,
  notebooks,
  known = [],
  onOpen,
  onBack
}: {
  job: Job;
  api: TrainingApi;
  stream: JobEventStream | null;
  notebooks: NotebookBridge;
  /** The other jobs the sidebar knows: the later jobs of this one's resume chain are among them. */
  known?: Job[];
  /** Open another job's details (a link of the resume chain). */
  onOpen: (id: string) => void;
  onBack: () => void;
}): JSX.Element {
  const progress = useJobProgress(stream, job.id, worldSize(job));
  const finished = FINISHED_PHASES.has(job.phase);
  const resumable = RESUMABLE_PHASES.has(job.phase);
  const now = useNow(!finished);
  const [detail, setDetail] = useState<JobDetail | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [resuming, setResuming] = useState(false);
  const [resumeError, setResumeError] = useState<string | null>(null);
  const shown = useRef(true); // still on screen when a Resume under way ends
  useEffect(
    () => () => {
      shown.current = false;
    },
    []
  );

  useEffect(() => {
    let current = true;
    api.getJob(job.id).then(
      fetched => current && setDetail(fetched),
      () => current && setDetail(null)
    );
    return () => {
      current = false;
    };
  }, [api, job.id]);

  const report = (action: Promise<unknown>) => {
    setError(null);
    action.catch(reason => setError(reason.message ?? String(reason)));
  };

  /** `%train_resume <id> --detach` in the notebook's kernel, then the new job's details. */
  const resume = async () => {
    setResumeError(null);
    setResuming(true);
    try {
      await notebooks.resume(job.id);
      const fresh = await api.getJob(job.id);
      setDetail(fresh);
      const children = (fresh.lineage_jobs ?? []).filter(entry => entry.parent_id === job.id);
      if (children.length && shown.current) {
        onOpen(children[children.length - 1].id);
      }
    } catch (reason) {
      setResumeError((reason as Error).message ?? String(reason));
    } finally {
      setResuming(false);
    }
  };

  const chain = lineageOf(job, detail, known);
  const cell = detail?.id === job.id ? detail.cell : null;

  return (
    <div data-testid="jt-details" data-job-id={job.id} className="jp-TrainingDetails">
      <div className="jp-TrainingDetails-toolbar">
        <button data-testid="jt-back" onClick={onBack}>
          ← Back
        </button>
        <button data-testid="jt-open-in-notebook" onClick={() => report(notebooks.attach(job.id))}>
          Open in notebook
        </button>
        {finished && (
          <button
            data-testid="jt-resume"
            className={resumable ? 'jp-mod-accept' : undefined}
            disabled={!resumable || resuming}
            title={
              resumable
                ? `Run %train_resume ${job.id} --detach in the current notebook's kernel: ` +
                  'a new job from its last checkpoint'
                : 'A succeeded job has nothing to resume'
            }
            onClick={resume}
          >
            {resuming ? 'Resuming…' : 'Resume'}
          </button>
        )}
        <button
          data-testid="jt-cancel"
          className="jp-mod-warn"
          disabled={finished}
          onClick={() => report(api.cancelJob(job.id))}
        >
          Cancel
        </button>
      </div>
      {resumeError && (
        <div data-testid="jt-resume-error" className="jp-TrainingError" role="alert">
          {resumeError}
        </div>
      )}
      <div className="jp-TrainingJobRow-head">
        <span className="jp-TrainingJobRow-name">{job.name}</span>
        <PhaseBadge phase={job.phase} />
      </div>
      <div className="jp-TrainingJobRow-meta">
        {[job.id, describeResources(job), job.framework, job.backend, elapsed(job, now)]
          .filter(Boolean)
          .join(' · ')}
        {job.attempt > 1 && ` · attempt ${job.attempt}`}
      </div>
      {job.notebook && <div className="jp-TrainingJobRow-meta">from {job.notebook}</div>}
      {scheduledBy(job) && (
        <div className="jp-TrainingJobRow-meta" data-testid="jt-job-scheduler-id">
          scheduled run: jupyter-scheduler job {scheduledBy(job)}
        </div>
      )}
      <JobLineage job={job} chain={chain} onOpen={onOpen} />
      <JobCheckpoints job={job} />
      {job.message && job.message !== job.failure?.reason && (
        <div className="jp-TrainingDetails-message">{job.message}</div>
      )}
      {job.failure && <div className="jp-TrainingError">{job.failure.reason}</div>}
      {progress.error && <div className="jp-TrainingError">{progress.error}</div>}
      {error && (
        <div className="jp-TrainingError" role="alert">
          {error}
        </div>
      )}
      <RankTable ranks={progress.ranks} />
      <MetricCharts
        api={api}
        stream={stream}
        jobId={job.id}
        ranks={worldSize(job)}
        checkpoints={job.checkpoints?.map(mark => mark.step)}
      />
      <LogViewer lines={progress.log} ranks={Math.max(worldSize(job), progress.ranks.length)} />
      {cell !== null && (
        <details className="jp-TrainingDetails-cell">
          <summary>Cell</summary>
          <pre>{cell}</pre>
        </details>
      )}
    </div>
  );
}
