import { ReactWidget } from '@jupyterlab/ui-components';
import React from 'react';

import { TrainingApi } from './api';
import { TrainingPanel } from './components/TrainingPanel';
import { NotebookBridge } from './notebook';

export class TrainingSidebar extends ReactWidget {
  constructor(
    private readonly _api: TrainingApi,
    private readonly _notebooks: NotebookBridge
  ) {
    super();
    this.addClass('jp-TrainingSidebar');
    this.node.setAttribute('data-testid', 'jt-sidebar');
  }

  render(): JSX.Element {
    return <TrainingPanel api={this._api} notebooks={this._notebooks} />;
  }
}
