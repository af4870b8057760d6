// Dropping the copies a client sees twice.

/** The last `limit` publication ids seen, so a publication is handed out once. */
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
 * While two connections are open at once (a proactive reconnect), a back end's message to the
 * user reaches both. Messages carry no id, so the client counts each distinct frame per
 * connection and lets a copy through only when its connection has now seen it more often than
 * any other: across the overlap the app gets max(count on A, count on B) copies of each frame —
 * everything sent to either connection, and twice only what the back end really sent twice.
 */
export class OverlapFilter<K> {
  private readonly counts = new Map<string, Map<K, number>>();

  constructor(private readonly limit: number) {}

  /** Whether the frame `text`, just received on connection `from`, is new to the app. */
  admit(text: string, from: K): boolean {
    let perConnection = this.counts.get(text);
    if (!perConnection) {
      if (this.counts.size >= this.limit) this.counts.clear(); // bounded; at worst a duplicate
      perConnection = new Map();
      this.counts.set(text, perConnection);
    }
    const mine = (perConnection.get(from) ?? 0) + 1;
    perConnection.set(from, mine);
    let others = 0;
    for (const [connection, count] of perConnection) {
      if (connection !== from) others = Math.max(others, count);
    }
    return mine > others;
  }

  clear(): void {
    this.counts.clear();
  }
}
