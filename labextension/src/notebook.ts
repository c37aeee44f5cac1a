/**
 * The sidebar's hands in the notebook: launch the active cell through its
 * kernel with `%%train_distributed`, resume a job with `%train_resume`, and
 * open a job with `%train_attach`.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { INotebookTracker, NotebookActions, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';

export interface LaunchOptions {
  /** A framework name the server listed (GET /cluster). */
  framework: string;
  workers: number;
  gpus: number;
  /** `--nproc-per-worker`: processes per worker (omitted: 1). */
  nprocPerWorker?: number;
  backend: string;
  image?: string;
  namespace?: string;
  /** `--secret-env` entries: NAME (the kernel's value) or, on Kubernetes, NAME=SECRET/KEY. */
  secretEnv?: string[];
}

/** A user-facing failure: the message says what to do. */
export class NotebookActionError extends Error {
  name = 'NotebookActionError';
}

function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'"'"'`)}'`;
}

/** The magic line the launch form stands for, exactly as a user would type it. */
export function magicLine(options: LaunchOptions): string {
  const args = [
    '%%train_distributed',
    `--framework ${shellQuote(options.framework)}`,
    `--workers ${options.workers}`,
    `--gpus ${options.gpus}`,
    `--backend ${shellQuote(options.backend)}`
  ];
  if (options.nprocPerWorker && options.nprocPerWorker > 1) {
    args.push(`--nproc-per-worker ${options.nprocPerWorker}`);
  }
  if (options.image) {
    args.push(`--image ${shellQuote(options.image)}`);
  }
  if (options.namespace) {
    args.push(`--namespace ${shellQuote(options.namespace)}`);
  }
  for (const entry of options.secretEnv ?? []) {
    args.push(`--secret-env ${shellQuote(entry)}`);
  }
  args.push('--detach');
  return args.join(' ');
}

/** The line the Resume button runs, exactly as a user would type it. */
export function resumeLine(jobId: string): string {
  return `%train_resume ${shellQuote(jobId)} --detach`;
}

export class NotebookBridge {
  constructor(
    private readonly _tracker: INotebookTracker,
    private readonly _shell: JupyterFrontEnd.IShell
  ) {}

  /** Run the active code cell of the current notebook as a detached training job. */
  async launchActiveCell(options: LaunchOptions): Promise<void> {
    const panel = this._currentNotebook();
    const cell = panel.content.activeCell;
    if (!cell || cell.model.type !== 'code') {
      throw new NotebookActionError(`Select the code cell to launch in ${panel.title.label}.`);
    }
    const source = cell.model.sharedModel.getSource();
    if (!source.trim()) {
      throw new NotebookActionError('The active cell is empty: write the training code first.');
    }
    if (source.trimStart().startsWith('%%')) {
      throw new NotebookActionError(
        'The active cell already starts with a cell magic: ' +
          'run it directly, or remove the magic line.'
      );
    }
    const kernel = await this._kernel(panel);
    await execute(kernel, `${magicLine(options)}\n${source}`);
  }

  /**
   * Carry on a failed or cancelled job: `%train_resume <id> --detach` in the current
   * notebook's kernel (so the new job is that notebook's, as a launch is). The kernel's
   * refusal (a succeeded job, an unknown id) is thrown as its message.
   */
  async resume(jobId: string): Promise<void> {
    const panel = this._currentNotebook();
    const kernel = await this._kernel(panel);
    await execute(kernel, resumeLine(jobId));
  }

  /** Insert `%train_attach <id>` below the active cell of the current notebook and run it. */
  async attach(jobId: string): Promise<void> {
    const panel = this._currentNotebook();
    await this._kernel(panel);
    const notebook = panel.content;
    NotebookActions.insertBelow(notebook);
    NotebookActions.changeCellType(notebook, 'code');
    notebook.activeCell?.model.sharedModel.setSource(`%train_attach ${jobId}`);
    this._shell.activateById(panel.id);
    await NotebookActions.run(notebook, panel.sessionContext);
  }

  private _currentNotebook(): NotebookPanel {
    const panel = this._tracker.currentWidget;
    if (!panel) {
      throw new NotebookActionError('Open a notebook first: the sidebar works on the current one.');
    }
    return panel;
  }

  /** The notebook's kernel, with the training magics loaded. */
  private async _kernel(panel: NotebookPanel): Promise<Kernel.IKernelConnection> {
    await panel.sessionContext.ready;
    const kernel = panel.sessionContext.session?.kernel;
    if (!kernel) {
      throw new NotebookActionError(
        `${panel.title.label} has no kernel: start one and try again.`
      );
    }
    await execute(kernel, '%load_ext jupyter_training', { silent: true, store_history: false });
    return kernel;
  }
}

async function execute(
  kernel: Kernel.IKernelConnection,
  code: string,
  options: { silent?: boolean; store_history?: boolean } = {}
): Promise<void> {
  const reply = await kernel.requestExecute({ code, ...options }).done;
  const content = reply.content;
  if (content.status === 'error') {
    throw new NotebookActionError(content.evalue || content.ename);
  }
  if (content.status === 'aborted') {
    throw new NotebookActionError('The kernel aborted the request (an earlier cell failed?).');
  }
}
