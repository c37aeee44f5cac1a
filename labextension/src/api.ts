/**
 * The one service module: every REST call and the event WebSocket of the
 * jupyter-training server extension, under `{baseUrl}jupyter-training/api/`.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

export type Phase =
  | 'Pending'
  | 'Running'
  | 'Restarting'
  | 'Succeeded'
  | 'Failed'
  | 'Cancelled'
  /** A sweep's pruner stopped the trial early: an outcome of the search, not a failure. */
  | 'Pruned';

export const FINISHED_PHASES: ReadonlySet<string> = new Set([
  'Succeeded',
  'Failed',
  'Cancelled',
  'Pruned'
]);

/** Final phases `%train_resume` carries on from (a succeeded job has nothing to resume). */
export const RESUMABLE_PHASES: ReadonlySet<string> = new Set(['Failed', 'Cancelled', 'Pruned']);

/** One `save_checkpoint()` of a job: its step and when (seconds since the epoch). */
export interface CheckpointMark {
  step: number;
  time: number;
}

/** One attempt of a job (restarts are attempts 1, 2, ...) and how many workers it ran. */
export interface AttemptInfo {
  attempt: number;
  workers: number;
}

export interface Job {
  id: string;
  name: string;
  phase: Phase;
  framework: string;
  backend: string;
  workers: number;
  /** Processes per worker and the ranks in all (absent from older servers: 1 and workers). */
  nproc_per_worker?: number;
  world_size?: number;
  gpus: number;
  created: string | null;
  started: string | null;
  finished: string | null;
  failure: { reason: string; [key: string]: unknown } | null;
  message: string | null;
  attempt: number;
  notebook: string | null;
  metrics: Record<string, number> | null;
  /** The run's params (notebook values the cell read, the magic's flags, log_params()). */
  params?: Record<string, unknown>;
  tags?: Record<string, unknown>;
  /** The id of the sweep this job is a trial of (`%%train_sweep`). */
  sweep?: string | null;
  /** The job this one resumed (`%train_resume`), if any. */
  parent_id?: string | null;
  /** The first job of its resume chain (its own id when it resumed nothing). */
  lineage?: string;
  /** Each step it saved a checkpoint of, oldest first. */
  checkpoints?: CheckpointMark[];
  /** Each attempt's worker count (an elastic job may shrink); empty until it starts. */
  attempts?: AttemptInfo[];
}

/** One job of a resume chain, as `GET jobs/ID` lists them. */
export interface LineageJob {
  id: string;
  name: string;
  phase: Phase;
  parent_id: string | null;
  created: string | null;
  finished: string | null;
  /** How many checkpoints it saved. */
  checkpoints?: number;
}

export interface JobDetail extends Job {
  spec: Record<string, unknown>;
  cell: string;
  /** Every job of its lineage (itself included), oldest first (absent from older servers). */
  lineage_jobs?: LineageJob[];
}

export interface JobPage {
  jobs: Job[];
  limit: number;
  offset: number;
}

export interface JobQuery {
  limit?: number;
  offset?: number;
  /** A case-insensitive substring, or a glob with `*` / `?`. */
  name?: string;
  phase?: string;
  backend?: string;
  notebook?: string;
  /** `created` (newest first), `metrics.NAME` or `params.NAME`; a leading `-` sorts descending. */
  sort?: string;
  /** Only this sweep's trials (its id or name). */
  sweep?: string;
}

/** One trial of a sweep as its driver recorded it (its job has the live phase). */
export interface SweepTrial {
  job: string | null;
  name: string;
  phase: Phase;
  /** The trial's objective (its last or best reported value), once it succeeded. */
  value: number | null;
  params: Record<string, unknown>;
  message?: string;
}

export interface SweepParam {
  name: string;
  kind: 'uniform' | 'loguniform' | 'int' | 'choice';
  args: unknown[];
}

/** A `%%train_sweep`: an Optuna search whose every trial is a job. */
export interface Sweep {
  id: string;
  name: string;
  phase: Phase;
  message: string;
  notebook: string | null;
  created: string | null;
  finished: string | null;
  /** The magic's flags (empty for a sweep refused before it started). */
  options: {
    metric?: string;
    direction?: 'minimize' | 'maximize';
    trials?: number;
    parallel?: number;
    sampler?: string;
    prune?: string;
    params?: SweepParam[];
  };
  /** Trial number (as text) -> its outcome so far. */
  trials: Record<string, SweepTrial>;
  best: {
    trial: number;
    job: string;
    name: string;
    value: number;
    params: Record<string, unknown>;
  } | null;
  /** Trials not ended, and ended (any final phase). */
  running: number;
  done: number;
  /** Running, but the kernel that drives it is gone (`--resume` continues it). */
  stopped: boolean;
}

export interface SweepDetail extends Sweep {
  cell: string;
  /** The trials' jobs, oldest first. */
  jobs: Job[];
}

/** A job's metrics and, per rank, how many points the server stored. */
export interface MetricIndex {
  job_id: string;
  metrics: { name: string; ranks: Record<string, number> }[];
}

/** One rank's curve, downsampled by the server; `points` is how many it stored in all. */
export interface RankSeries {
  rank: number;
  x: number[];
  y: number[];
  points: number;
}

export interface MetricHistory {
  name: string;
  series: RankSeries[];
}

/** Which ranks to show: one rank or every rank overlaid. */
export type RankChoice = number | 'all';

export interface CompareRun {
  id: string;
  name: string;
  phase: Phase;
  framework: string;
  backend: string;
  workers: number;
  created: string | null;
  duration: number | null;
  params: Record<string, unknown>;
  metrics: Record<string, number> | null;
  tags: Record<string, unknown>;
}

export interface CompareCurve {
  id: string;
  name: string;
  x: number[];
  y: number[];
  /** Points the run stored for this metric (rank 0). */
  points: number;
}

export type ObjectiveMode = 'min' | 'max';

export interface Comparison {
  runs: CompareRun[];
  params: string[];
  differing: string[];
  /** Every metric a run reported, in the order first seen. */
  metrics: string[];
  objective: { metric: string; mode: ObjectiveMode } | null;
  best: string | null;
  /** Rank 0's curve of every run, per metric. */
  curves: Record<string, CompareCurve[]>;
}

export interface BackendInfo {
  available: boolean;
  error?: string;
  gpus?: number;
  cpus?: number;
  apis?: string[];
  namespace?: string;
}

/** A framework the server knows (one module of jupyter_training/frameworks). */
export interface FrameworkInfo {
  name: string;
  title: string;
  aliases: string[];
  summary: string;
  kubeflow_kind: string | null;
  v2_runtime: string | null;
  image: string;
}

export interface ClusterInfo {
  default_backend: string;
  backends: Record<string, BackendInfo>;
  frameworks: FrameworkInfo[];
  images: Record<string, string>;
  limits?: { max_workers?: number; max_gpus_per_worker?: number };
}

export type EventKind = 'phase' | 'worker' | 'log' | 'error' | 'report' | 'result';

export interface JobEvent {
  kind: EventKind;
  job_id: string;
  rank: number | null;
  time: number;
  data: Record<string, any>;
}

export type ServerMessage =
  | { type: 'jobs'; jobs: Job[] }
  | { type: 'job'; job: Job }
  | { type: 'sweep'; sweep: Sweep }
  | { type: 'event'; job_id: string; event: JobEvent };

/** A failed call: the HTTP status, the server's message, and the flag at fault (400s). */
export class TrainingApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly field: string | null = null
  ) {
    super(message);
    this.name = 'TrainingApiError';
  }

  /** True when no handler answered: the server extension is not installed or not enabled. */
  get extensionMissing(): boolean {
    return this.status === 404;
  }
}

export class TrainingApi {
  constructor(readonly settings: ServerConnection.ISettings) {}

  async version(): Promise<string> {
    const body = await this._json<{ version: string }>('version');
    return body.version;
  }

  listJobs(query: JobQuery = {}): Promise<JobPage> {
    const params = Object.entries(query)
      .filter(([, value]) => value !== undefined && value !== '')
      .map(([key, value]) => `${key}=${encodeURIComponent(String(value))}`);
    return this._json('jobs' + (params.length ? `?${params.join('&')}` : ''));
  }

  getJob(id: string): Promise<JobDetail> {
    return this._json(`jobs/${encodeURIComponent(id)}`);
  }

  submitJob(spec: Record<string, unknown>, cell: string): Promise<Job> {
    return this._json('jobs', {
      method: 'POST',
      body: JSON.stringify({ spec, cell })
    });
  }

  cancelJob(id: string): Promise<Job> {
    return this._json(`jobs/${encodeURIComponent(id)}`, { method: 'DELETE' });
  }

  /** A job's output so far, lines `[rank R] text` (all ranks unless `rank` is given). */
  async logs(id: string, rank: number | null = null): Promise<string> {
    const query = rank === null ? '' : `?rank=${rank}`;
    const response = await this._request(`jobs/${encodeURIComponent(id)}/logs${query}`);
    return response.text();
  }

  metricIndex(id: string): Promise<MetricIndex> {
    return this._json(`jobs/${encodeURIComponent(id)}/metrics`);
  }

  /** One metric's curves, at most `maxPoints` a rank (thinned by the server). */
  metricHistory(
    id: string,
    name: string,
    rank: RankChoice,
    maxPoints: number
  ): Promise<MetricHistory> {
    const query = `rank=${rank}&max_points=${maxPoints}`;
    return this._json(
      `jobs/${encodeURIComponent(id)}/metrics/${encodeURIComponent(name)}?${query}`
    );
  }

  /** Runs side by side: params (and which differ), final metrics, best run, rank-0 curves. */
  compare(
    ids: string[],
    objective: { metric: string; mode: ObjectiveMode } | null,
    maxPoints: number
  ): Promise<Comparison> {
    const query = [`ids=${ids.map(encodeURIComponent).join(',')}`, `max_points=${maxPoints}`];
    if (objective) {
      query.push(`objective=${encodeURIComponent(`${objective.metric}:${objective.mode}`)}`);
    }
    return this._json(`compare?${query.join('&')}`);
  }

  /** Sweeps, newest first. */
  async listSweeps(limit = 100): Promise<Sweep[]> {
    const body = await this._json<{ sweeps: Sweep[] }>(`sweeps?limit=${limit}`);
    return body.sweeps;
  }

  getSweep(id: string): Promise<SweepDetail> {
    return this._json(`sweeps/${encodeURIComponent(id)}`);
  }

  /** Start no more trials and stop the running ones. */
  cancelSweep(id: string): Promise<Sweep> {
    return this._json(`sweeps/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
  }

  cluster(): Promise<ClusterInfo> {
    return this._json('cluster');
  }

  /** Open the event stream; it reconnects by itself until disposed. */
  connectEvents(): JobEventStream {
    const url = URLExt.join(this.settings.wsUrl, 'jupyter-training/api/events');
    const token = this.settings.token;
    const withToken = token ? `${url}?token=${encodeURIComponent(token)}` : url;
    return new JobEventStream(withToken, this.settings.WebSocket);
  }

  private async _request(path: string, init: RequestInit = {}): Promise<Response> {
    const url = URLExt.join(this.settings.baseUrl, 'jupyter-training/api', path);
    let response: Response;
    try {
      response = await ServerConnection.makeRequest(url, init, this.settings);
    } catch (error) {
      throw new TrainingApiError(`Jupyter server unreachable: ${error}`, 0);
    }
    if (!response.ok) {
      throw await errorFrom(response);
    }
    return response;
  }

  private async _json<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await this._request(path, init);
    return response.json() as Promise<T>;
  }
}

async function errorFrom(response: Response): Promise<TrainingApiError> {
  let message = response.statusText || `HTTP ${response.status}`;
  let field: string | null = null;
  try {
    const body = await response.json();
    message = body.message || body.reason || message;
    field = body.field ?? null;
  } catch {
    // Not JSON (for example Tornado's HTML 404 page): keep the status text.
  }
  return new TrainingApiError(message, response.status, field);
}

export type StreamState = 'connecting' | 'open' | 'closed';

const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

/**
 * The `events` WebSocket. Emits every server message; on close it reconnects
 * with exponential backoff and re-sends the current subscription, after which
 * the server replays that job's events from the start.
 */
export class JobEventStream implements IDisposable {
  constructor(
    private readonly _url: string,
    private readonly _WebSocket: typeof WebSocket
  ) {
    this._connect();
  }

  get messages(): ISignal<this, ServerMessage> {
    return this._messages;
  }

  get stateChanged(): ISignal<this, StreamState> {
    return this._stateChanged;
  }

  get state(): StreamState {
    return this._state;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Receive `jobId`'s full event stream (replayed from its start); null stops it. */
  subscribe(jobId: string | null): void {
    this._subscription = jobId;
    this._send({ subscribe: jobId });
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    window.clearTimeout(this._retryTimer);
    this._socket?.close();
    Signal.clearData(this);
  }

  private _connect(): void {
    this._setState('connecting');
    const socket = new this._WebSocket(this._url);
    this._socket = socket;
    socket.onopen = () => {
      this._retries = 0;
      this._setState('open');
      if (this._subscription !== null) {
        this._send({ subscribe: this._subscription });
      }
    };
    socket.onmessage = message => {
      this._messages.emit(JSON.parse(message.data) as ServerMessage);
    };
    socket.onclose = () => {
      if (this._disposed) {
        return;
      }
      this._setState('closed');
      const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** this._retries++);
      const jittered = delay * (0.75 + Math.random() / 2);
      this._retryTimer = window.setTimeout(() => this._connect(), jittered);
    };
  }

  private _send(message: Record<string, unknown>): void {
    if (this._socket?.readyState === WebSocket.OPEN) {
      this._socket.send(JSON.stringify(message));
    }
  }

  private _setState(state: StreamState): void {
    this._state = state;
    this._stateChanged.emit(state);
  }

  private _socket: WebSocket | null = null;
  private _state: StreamState = 'connecting';
  private _subscription: string | null = null;
  private _retries = 0;
  private _retryTimer = 0;
  private _disposed = false;
  private _messages = new Signal<this, ServerMessage>(this);
  private _stateChanged = new Signal<this, StreamState>(this);
}
