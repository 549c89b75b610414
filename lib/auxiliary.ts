/**
 * The auxiliary inputs of a job besides the checkpoint: importance weights (lib/importance.ts) and calibration
 * Gram matrices (lib/calibration.ts), opened once per job for the codecs, closed together.
 */
import { Calibration } from './calibration.js';
import { Importance } from './importance.js';
import type { TaskOptions } from './codecs/codec.js';

export interface Auxiliary {
  importance?: Importance;
  calibration?: Calibration;
  close(): void;
}

/** Opens the files `o` names (either may be absent). Throws IoError/FormatError for a bad file, closing what it opened. */
export async function openAuxiliary(o: Pick<TaskOptions, 'importance' | 'imatrix' | 'importanceKind' | 'importanceMap' | 'calibration' | 'calibrationMap'> | undefined): Promise<Auxiliary> {
  const a: Auxiliary = {
    close() {
      this.importance?.close();
      this.calibration?.close();
    },
  };
  try {
    if (o?.importance !== undefined) a.importance = await Importance.open(o.importance, o.importanceKind, o.importanceMap);
    else if (o?.imatrix !== undefined) a.importance = await Importance.openImatrix(o.imatrix, o.importanceMap);
    if (o?.calibration !== undefined) a.calibration = await Calibration.open(o.calibration, o.calibrationMap);
  } catch (e) {
    a.close();
    throw e;
  }
  return a;
}
