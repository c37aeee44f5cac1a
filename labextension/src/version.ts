/** The version handshake between this frontend and the server extension. */
import { TrainingApi, TrainingApiError } from './api';

declare function require(path: string): { version: string };

/** This labextension's version; the Python package must have the same one. */
export const FRONTEND_VERSION: string = require('../package.json').version;

export type Handshake =
  | { kind: 'checking' }
  | { kind: 'ok' }
  | { kind: 'missing' }
  | { kind: 'mismatch'; server: string; frontend: string }
  | { kind: 'unreachable'; message: string };

export async function handshake(api: TrainingApi): Promise<Handshake> {
  try {
    const server = await api.version();
    return server === FRONTEND_VERSION
      ? { kind: 'ok' }
      : { kind: 'mismatch', server, frontend: FRONTEND_VERSION };
  } catch (error) {
    if (error instanceof TrainingApiError && error.extensionMissing) {
      return { kind: 'missing' };
    }
    return { kind: 'unreachable', message: String((error as Error).message ?? error) };
  }
}
