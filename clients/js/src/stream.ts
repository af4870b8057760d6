// Recovery for one exact channel that keeps history (see README.md § History and recovery):
// the client remembers the position `{offset, epoch}` below which it has handed out everything,
// hands publications out in offset order only, holds back the ones that arrive past a gap, and
// fills the gap — from a `subscribe` with `since` after a reconnect, or from `history` while
// connected. Offsets already handled (delivered before the position was known, or the client's
// own emits, which the gateway never sends back) are skipped, so nothing is handed out twice.
import { after, cancel, type TimerHandle } from './timers.js';
import type { Frame } from './frames.js';
import type { Position, Publication, SubscribedContext } from './types.js';

/** A fill that found the next offset missing this many times in a row gives up on it. */
const TRIES = 2;

export interface StreamOwner {
  /** Hands a publication out (to the handles and the client's event), once per id. */
  out(publication: Publication): void;
  /** Asks `history` since `since` (answered through fillReply/fillFailed); false when not connected now. */
  ask(stream: ChannelStream, since: Position): boolean;
  /** Tells the handles how a subscription (or recovery) ended. */
  tell(context: SubscribedContext): void;
}

type Positioned = Publication & { offset: number; epoch: string };

export class ChannelStream {
  /** The offset below which (inclusive) everything of `epoch` was handed out; unknown until the gateway tells it. */
  position: Position | undefined;
  /** Arrived past a gap: waiting for their turn, by offset. */
  private readonly held = new Map<number, Positioned>();
  /** offset → epoch of what was handled before its turn (handed out early, or an own emit). */
  private readonly done = new Map<number, string>();
  private filling = false;
  /** Fills in a row that did not get the next offset. */
  private misses = 0;
  /** A recovery not yet told: the `subscribed` context waits for the fill that decides it. */
  private untold = false;
  private timer: TimerHandle | undefined;

  constructor(readonly channel: string, private readonly owner: StreamOwner, private readonly gapMs: number) {}

  /** The gateway answered `subscribed` for this channel (`since` as sent, if any). */
  subscribed(frame: Frame, since: Position | undefined): void {
    const offset = frame['offset'];
    const epoch = frame['epoch'];
    const wasRecovering = since !== undefined;
    if (typeof offset !== 'number' || typeof epoch !== 'string') {
      // The channel keeps no history: nothing to recover, nothing to order.
      this.tell(false, wasRecovering);
      return;
    }
    const position = this.position;
    if (!position || !since) {
      // A first subscribe (on a second connection too, before the first answered: the
      // position already known stands).
      if (position?.epoch !== epoch) this.reset({ offset, epoch });
      this.tell(false, false);
      return;
    }
    if (frame['recovered'] === true) {
      this.untold = false;
      this.misses = 0;
      this.tell(true, true);
      this.replay(frame['publications'], offset, epoch, frame['more'] === true);
    } else if (epoch !== position.epoch || since.offset > offset) {
      this.lost(offset, epoch);
    } else {
      // Same epoch, an offset the sequence reached: either older than what history keeps, or
      // the next publication was given its offset but not yet stored when the gateway read.
      // A `history` a little later tells which.
      this.untold = true;
      this.wait(true);
    }
  }

  /** A publication of this channel, live or replayed. */
  take(publication: Positioned): void {
    const position = this.position;
    if (!position) {
      // No position yet: hand it out now, and skip it when the position comes below it.
      this.done.set(publication.offset, publication.epoch);
      this.owner.out(publication);
      return;
    }
    if (publication.epoch !== position.epoch) {
      // The channel's sequence was lost (its state expired): start over from this one.
      this.lost(publication.offset - 1, publication.epoch);
    } else if (publication.offset <= position.offset || this.done.get(publication.offset) === position.epoch) {
      return; // a double
    }
    this.held.set(publication.offset, publication);
    this.advance();
  }

  /** An offset the client handled itself (its own emit, from the ack): never handed to it. */
  own(offset: number, epoch: string): void {
    if (this.position && (epoch !== this.position.epoch || offset <= this.position.offset)) return;
    this.done.set(offset, epoch);
    if (this.position) this.advance();
  }

  /** The answer to a fill's `history`. */
  fillReply(frame: Frame): void {
    this.filling = false;
    const position = this.position;
    if (!position) return;
    const offset = typeof frame['offset'] === 'number' ? frame['offset'] : position.offset;
    const epoch = typeof frame['epoch'] === 'string' ? frame['epoch'] : position.epoch;
    if (frame['recovered'] === false) {
      if (epoch !== position.epoch || (this.misses += 1) >= TRIES) this.lost(offset, epoch);
      else this.wait(this.untold);
      return;
    }
    if (this.untold) {
      this.untold = false;
      this.tell(true, true);
    }
    this.replay(frame['publications'], offset, epoch, frame['more'] === true);
  }

  /** A fill got no answer in time (or was refused): hand out what is held, in order, and move on. */
  fillFailed(): void {
    this.filling = false;
    const position = this.position;
    if (!position) return;
    if (this.untold) {
      this.lost(position.offset, position.epoch);
      return;
    }
    // Past the gap: what it held back is all there is.
    this.reset({ offset: Math.max(position.offset, this.flush()), epoch: position.epoch });
  }

  /** A fill's connection ended: the next connection's `subscribe` with `since` recovers. */
  fillLost(): void {
    this.filling = false;
  }

  stop(): void {
    cancel(this.timer);
    this.timer = undefined;
    this.held.clear();
  }

  private replay(publications: unknown, top: number, epoch: string, more: boolean): void {
    for (const frame of Array.isArray(publications) ? publications : []) {
      const publication = readPublication(frame);
      if (publication?.offset !== undefined && publication.epoch === epoch) this.take(publication as Positioned);
    }
    const position = this.position;
    if (!position) return;
    if (more) {
      this.fill();
      return;
    }
    // Everything kept up to `top` was given: an offset still missing below it is a gap (an
    // offset given out, its publication never kept) — or, rarely, one not yet stored, so it is
    // only skipped when the next fill misses it too.
    if (this.held.size > 0 && position.offset < top && !this.held.has(position.offset + 1)) {
      if ((this.misses += 1) < TRIES) {
        this.wait(false);
        return;
      }
      while (position.offset < top && this.held.size > 0) {
        position.offset += 1;
        this.advance();
      }
    }
    this.misses = 0;
    this.reset(position);
  }

  /** Hands out what is next in order; a gap left behind is filled after `gapMs`. */
  private advance(): void {
    const position = this.position as Position;
    for (;;) {
      const next = position.offset + 1;
      const publication = this.held.get(next);
      if (publication) {
        this.held.delete(next);
        position.offset = next;
        this.owner.out(publication);
      } else if (this.done.get(next) === position.epoch) {
        this.done.delete(next);
        position.offset = next;
      } else {
        break;
      }
    }
    if (this.held.size === 0) {
      this.misses = 0;
      if (!this.untold) {
        cancel(this.timer);
        this.timer = undefined;
      }
    } else {
      this.wait(false);
    }
  }

  /** Fills after `gapMs` (a publication past a gap is often just overtaken by a few ms). */
  private wait(force: boolean): void {
    if (this.timer !== undefined || this.filling) return;
    this.timer = after(this.gapMs, () => {
      this.timer = undefined;
      if (force || this.untold || this.held.size > 0) this.fill();
    });
  }

  private fill(): void {
    if (this.filling || !this.position) return;
    cancel(this.timer);
    this.timer = undefined;
    this.filling = this.owner.ask(this, { ...this.position });
  }

  /** Cannot be recovered: hand out what is held, in order, and continue from the gateway's position. */
  private lost(offset: number, epoch: string): void {
    this.untold = false;
    this.flush();
    this.reset({ offset, epoch });
    this.tell(false, true);
  }

  /**
   * Hands out everything held, in offset order, each remembered as done (so it is skipped
   * when the position passes it); returns the highest offset handed out (0: none).
   */
  private flush(): number {
    let highest = 0;
    for (const offset of [...this.held.keys()].sort((a, b) => a - b)) {
      const publication = this.held.get(offset) as Positioned;
      this.held.delete(offset);
      this.done.set(offset, publication.epoch);
      highest = offset;
      this.owner.out(publication);
    }
    this.misses = 0;
    cancel(this.timer);
    this.timer = undefined;
    return highest;
  }

  private reset(position: Position): void {
    this.position = position;
    for (const [offset, epoch] of this.done) if (epoch !== position.epoch || offset <= position.offset) this.done.delete(offset);
    this.advance();
  }

  private tell(recovered: boolean, wasRecovering: boolean): void {
    const context: SubscribedContext = { channel: this.channel, recovered, wasRecovering };
    if (this.position) context.position = { ...this.position };
    this.owner.tell(context);
  }
}

/** A publication frame (live, or inside a recovery or history reply) as handed out; undefined when not one. */
export function readPublication(frame: unknown): Publication | undefined {
  if (typeof frame !== 'object' || frame === null) return undefined;
  const f = frame as Frame;
  if (typeof f['channel'] !== 'string' || typeof f['id'] !== 'string' || !('data' in f)) return undefined;
  const publication: Publication = { channel: f['channel'], id: f['id'], data: f['data'] };
  if (typeof f['from'] === 'string') publication.from = f['from'];
  if (typeof f['offset'] === 'number') publication.offset = f['offset'];
  if (typeof f['epoch'] === 'string') publication.epoch = f['epoch'];
  return publication;
}
