import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';

import { TrainingApi } from './api';
import { answerLivenessProbes } from './frontend';
import { trainingIcon } from './icon';
import { NotebookBridge } from './notebook';
import { TrainingSidebar } from './widget';

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-training:plugin',
  description: 'The "Training jobs" sidebar: launch, watch and steer distributed training jobs.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    restorer: ILayoutRestorer | null
  ) => {
    const sidebar = new TrainingSidebar(
      new TrainingApi(app.serviceManager.serverSettings),
      new NotebookBridge(notebooks, app.shell)
    );
    sidebar.id = 'jupyter-training:sidebar';
    sidebar.title.icon = trainingIcon;
    sidebar.title.caption = 'Training jobs';
    app.shell.add(sidebar, 'left', { rank: 650 });
    restorer?.add(sidebar, sidebar.id);
    answerLivenessProbes(notebooks);
  }
};

export default plugin;
