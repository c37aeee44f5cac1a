/** React hooks: the event stream and what it tells, Lumino signals, the clock. */
import { ISignal } from '@lumino/signaling';
import { useCallback, useEffect, useMemo, useState } from 'react';

import { Job, JobEventStream, ServerMessage, StreamState, Sweep, TrainingApi } from './api';

/** Call `handler` for every emission of `signal` while mounted. */
export function useSignal<S, T>(
  signal: ISignal<S, T> | null,
  handler: (sender: S, value: T) => void
): void {
  useEffect(() => {
    if (!signal) {
      return;
    }
    signal.connect(handler);
    return () => {
      signal.disconnect(handler);
    };
  }, [signal, handler]);
}

/** The current time, ticking every second while `ticking`: it drives elapsed-time labels only. */
export function useNow(ticking: boolean): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    if (!ticking) {
      return;
    }
    const timer = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(timer);
  }, [ticking]);
  return now;
}

/** The event stream while `enabled` (the server extension answered), else null. */
export function useEventStream(api: TrainingApi, enabled: boolean): JobEventStream | null {
  const [stream, setStream] = useState<JobEventStream | null>(null);
  useEffect(() => {
    if (!enabled) {
      return;
    }
    const opened = api.connectEvents();
    setStream(opened);
    return () => {
      opened.dispose();
      setStream(null);
    };
  }, [api, enabled]);
  return stream;
}

function newestFirst(a: Job | Sweep, b: Job | Sweep): number {
  return Date.parse(b.created ?? '') - Date.parse(a.created ?? '') || b.id.localeCompare(a.id);
}

/** Every job the stream has told us about, newest first, kept current by its messages. */
export function useJobs(stream: JobEventStream | null): Job[] {
  const [jobs, setJobs] = useState<ReadonlyMap<string, Job>>(new Map());
  const onMessage = useCallback((_: JobEventStream, message: ServerMessage) => {
    if (message.type === 'jobs' || message.type === 'job') {
      const changed = message.type === 'jobs' ? message.jobs : [message.job];
      setJobs(known => new Map([...known, ...changed.map(job => [job.id, job] as const)]));
    }
  }, []);
  useSignal(stream?.messages ?? null, onMessage);
  return useMemo(() => [...jobs.values()].sort(newestFirst), [jobs]);
}

/**
 * Every sweep, newest first: asked of the server whenever the stream (re)connects (its
 * first message, the job list), then kept current by the stream's sweep messages.
 */
export function useSweeps(api: TrainingApi, stream: JobEventStream | null): Sweep[] {
  const [sweeps, setSweeps] = useState<ReadonlyMap<string, Sweep>>(new Map());
  const merge = useCallback(
    (changed: Sweep[]) =>
      setSweeps(known => new Map([...known, ...changed.map(sweep => [sweep.id, sweep] as const)])),
    []
  );
  const refetch = useCallback(() => {
    api.listSweeps().then(merge, () => undefined); // an older server has no sweeps
  }, [api, merge]);
  useEffect(() => {
    if (stream) {
      refetch();
    }
  }, [stream, refetch]);
  const onMessage = useCallback(
    (_: JobEventStream, message: ServerMessage) => {
      if (message.type === 'jobs') {
        refetch();
      } else if (message.type === 'sweep') {
        merge([message.sweep]);
      }
    },
    [refetch, merge]
  );
  useSignal(stream?.messages ?? null, onMessage);
  return useMemo(() => [...sweeps.values()].sort(newestFirst), [sweeps]);
}

/** The stream's connection state, for the "live / reconnecting" label. */
export function useStreamState(stream: JobEventStream | null): StreamState {
  const [state, setState] = useState<StreamState>(stream?.state ?? 'connecting');
  useEffect(() => setState(stream?.state ?? 'connecting'), [stream]);
  const onState = useCallback((_: JobEventStream, next: StreamState) => setState(next), []);
  useSignal(stream?.stateChanged ?? null, onState);
  return state;
}
