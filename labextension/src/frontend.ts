import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';

/** The comm target a kernel opens to ask whether a page shows its widgets
 * (`jupyter_training/views/frontend.py`). */
export const PROBE_TARGET = 'jupyter_training.frontend';

/**
 * Answers the kernel's "is anyone watching?" probe on every notebook's kernel connection,
 * so that a job's widget stays the only view here while headless runs (nbclient,
 * papermill, jupyter-scheduler), which nobody answers, also print the job's log.
 */
export function answerLivenessProbes(notebooks: INotebookTracker): void {
  const registered = new WeakSet<Kernel.IKernelConnection>();
  const register = (kernel: Kernel.IKernelConnection | null | undefined): void => {
    if (!kernel || registered.has(kernel)) {
      return;
    }
    registered.add(kernel);
    kernel.registerCommTarget(PROBE_TARGET, comm => {
      comm.send({ live: true });
      comm.close();
    });
  };
  const watch = (panel: NotebookPanel): void => {
    const session = panel.sessionContext;
    register(session.session?.kernel);
    session.kernelChanged.connect((_, change) => register(change.newValue));
  };
  notebooks.forEach(watch);
  notebooks.widgetAdded.connect((_, panel) => watch(panel));
}
