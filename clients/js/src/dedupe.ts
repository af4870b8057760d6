// Dropping the copies a client sees twice: a pusher retry, or the same delivery on both
// connections of a proactive reconnect's overlap. Every frame that carries application data
// (`message`, `publication`) has an id that is the same on every copy.

/** The last `limit` ids seen, so a message or publication is handed out once. */
export class RecentIds {
  private readonly ids = new Set<string>();

  constructor(private readonly limit: number) {}

  /** Records `id`; false when it was already seen. */
  add(id: string): boolean {
    if (this.ids.has(id)) return false;
    this.ids.add(id);
    if (this.ids.size > this.limit) {
      // A Set iterates in insertion order: the first entry is the oldest.
      const oldest = this.ids.values().next().value;
      if (oldest !== undefined) this.ids.delete(oldest);
    }
    return true;
  }
}

/**
 * The client's own recent emits, to recognise one that reaches a connection the emit could not
 * name in `exclude_connections`: the gateway fans an emit out later (through a queue), so an
 * emit sent on the old connection just before a proactive reconnect can reach the new one once
 * it has subscribed, though it did not exist (or had no known id) when the emit left. The
 * pusher delivers `data` byte for byte, so the echo's data re-serialises to the emitted text.
 */
export class OwnEmits<L> {
  private recent: { channel: string; text: string; excluded: L[]; at: number }[] = [];

  constructor(private readonly limit: number, private readonly ttlMs: number) {}

  add(channel: string, text: string, excluded: L[]): void {
    this.recent.push({ channel, text, excluded, at: Date.now() });
    if (this.recent.length > this.limit) this.recent.shift();
  }

  /** Whether a publication with `from`, received on `link`, is one of ours that `link` was not excluded from (forgotten once matched). */
  take(link: L, channel: string, data: unknown): boolean {
    const now = Date.now();
    this.recent = this.recent.filter((entry) => now - entry.at <= this.ttlMs);
    if (this.recent.length === 0) return false;
    const text = JSON.stringify(data);
    const index = this.recent.findIndex((entry) => entry.channel === channel && entry.text === text && !entry.excluded.includes(link));
    if (index < 0) return false;
    this.recent.splice(index, 1);
    return true;
  }
}
