// Dropping the copies a client sees twice: a pusher retry, or the same delivery on both
// connections of a proactive reconnect's overlap. Every frame that carries application data
// (`message`, `publication`) has an id that is the same on every copy.

/** The last `limit` ids seen, so a message or publication is handed out once. */
export class RecentIds {
  private readonly ids = new Set<string>();

  constructor(private readonly limit: number) {}

  has(id: string): boolean {
    return this.ids.has(id);
  }

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
