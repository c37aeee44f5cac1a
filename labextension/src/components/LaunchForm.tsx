import React, { useEffect, useState } from 'react';

import { ClusterInfo, TrainingApi } from '../api';
import { LaunchOptions, NotebookBridge } from '../notebook';

const FALLBACK_BACKENDS = ['local', 'kubernetes'];

function parseCount(text: string, label: string, min: number, max = Infinity): number {
  const value = Number(text);
  if (!text.trim() || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Infinity ? `at least ${min}` : `from ${min} to ${max}`;
    throw new Error(`${label} must be a whole number ${range}.`);
  }
  return value;
}

const SECRET_ENV = /^[A-Za-z_][A-Za-z0-9_]*(=[a-z0-9][-a-z0-9.]*(\/[-._a-zA-Z0-9]+)?)?$/;

/** `--secret-env` entries from a comma- or space-separated list; refuses bad names. */
function parseSecretEnv(text: string, onKubernetes: boolean): string[] {
  const entries = text.split(/[\s,]+/).filter(Boolean);
  for (const entry of entries) {
    if (!SECRET_ENV.test(entry) || (entry.includes('=') && !onKubernetes)) {
      throw new Error(
        `Secret env: ${entry} is not a variable name` +
          (onKubernetes ? ' or NAME=SECRET/KEY.' : ' (NAME=SECRET/KEY needs the kubernetes backend).')
      );
    }
  }
  return entries;
}

/** Runs the active notebook cell as a detached job with the chosen flags. */
export function LaunchForm({
  api,
  notebooks
}: {
  api: TrainingApi;
  notebooks: NotebookBridge;
}): JSX.Element {
  const [cluster, setCluster] = useState<ClusterInfo | null>(null);
  const [framework, setFramework] = useState<LaunchOptions['framework']>('pytorch');
  const [workers, setWorkers] = useState('2');
  const [nproc, setNproc] = useState('1');
  const [gpus, setGpus] = useState('0');
  const [backend, setBackend] = useState('local');
  const [image, setImage] = useState('');
  const [namespace, setNamespace] = useState('');
  const [secretEnv, setSecretEnv] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    api.cluster().then(
      info => {
        setCluster(info);
        setBackend(info.default_backend);
      },
      () => setCluster(null)
    );
  }, [api]);

  const backends = cluster ? Object.keys(cluster.backends) : FALLBACK_BACKENDS;
  // The server's list (one entry per framework module); until it answers, only the current choice.
  const frameworks = cluster?.frameworks ?? [];
  const chosen = frameworks.find(f => f.name === framework);
  const backendInfo = cluster?.backends[backend];
  const onKubernetes = backend === 'kubernetes';
  const limits = cluster?.limits;

  const launch = async (event: React.FormEvent) => {
    event.preventDefault();
    setError(null);
    setBusy(true);
    try {
      await notebooks.launchActiveCell({
        framework,
        workers: parseCount(workers, 'Workers', 1, limits?.max_workers),
        nprocPerWorker: parseCount(nproc, 'Processes per worker', 1),
        gpus: parseCount(gpus, 'GPUs per worker', 0, limits?.max_gpus_per_worker),
        backend,
        image: onKubernetes ? image.trim() : undefined,
        namespace: onKubernetes ? namespace.trim() : undefined,
        secretEnv: parseSecretEnv(secretEnv, onKubernetes)
      });
    } catch (reason) {
      setError((reason as Error).message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="jp-TrainingLaunch" onSubmit={launch} noValidate>
      <label>
        Framework
        <select
          data-testid="jt-launch-framework"
          value={framework}
          title={chosen?.summary ?? ''}
          onChange={event => setFramework(event.target.value)}
        >
          {frameworks.length === 0 && <option value={framework}>{framework}</option>}
          {frameworks.map(f => (
            <option key={f.name} value={f.name} title={f.summary}>
              {f.title}
            </option>
          ))}
        </select>
      </label>
      <label>
        Workers
        <input
          data-testid="jt-launch-workers"
          type="number"
          min={1}
          max={limits?.max_workers}
          value={workers}
          onChange={event => setWorkers(event.target.value)}
        />
      </label>
      <label title="Ranks per worker, as torchrun's --nproc-per-node">
        Processes per worker
        <input
          data-testid="jt-launch-nproc"
          type="number"
          min={1}
          value={nproc}
          onChange={event => setNproc(event.target.value)}
        />
      </label>
      <label>
        GPUs per worker
        <input
          data-testid="jt-launch-gpus"
          type="number"
          min={0}
          max={limits?.max_gpus_per_worker}
          value={gpus}
          onChange={event => setGpus(event.target.value)}
        />
      </label>
      <label>
        Backend
        <select
          data-testid="jt-launch-backend"
          value={backend}
          onChange={event => setBackend(event.target.value)}
        >
          {backends.map(name => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
      </label>
      {backendInfo && !backendInfo.available && (
        <div className="jp-TrainingHint">
          {backend} is not available{backendInfo.error ? `: ${backendInfo.error}` : ''}
        </div>
      )}
      <label title="Variables passed from the kernel's environment (or, on Kubernetes, NAME=SECRET/KEY from a Secret); never stored or logged, printed as ***">
        Secret env
        <input
          data-testid="jt-launch-secret-env"
          value={secretEnv}
          placeholder="HF_TOKEN, WANDB_API_KEY"
          onChange={event => setSecretEnv(event.target.value)}
        />
      </label>
      {onKubernetes && (
        <>
          <label>
            Image
            <input
              data-testid="jt-launch-image"
              value={image}
              placeholder={chosen?.image ?? ''}
              onChange={event => setImage(event.target.value)}
            />
          </label>
          <label>
            Namespace
            <input
              data-testid="jt-launch-namespace"
              value={namespace}
              placeholder={backendInfo?.namespace ?? ''}
              onChange={event => setNamespace(event.target.value)}
            />
          </label>
        </>
      )}
      <button
        data-testid="jt-launch-button"
        type="submit"
        className="jp-mod-accept"
        disabled={busy}
        title="Run the active notebook cell with %%train_distributed … --detach"
      >
        {busy ? 'Launching…' : 'Launch cell'}
      </button>
      {error && (
        <div data-testid="jt-launch-error" className="jp-TrainingError" role="alert">
          {error}
        </div>
      )}
    </form>
  );
}
