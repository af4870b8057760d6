// The host's timers, looked up on every call (so test fake timers that replace the globals
// apply) and typed here because the package compiles against the ECMAScript library only:
// neither the DOM nor Node's types leak into its declarations.

/** An opaque timer handle (a number in browsers, an object in Node). */
export type TimerHandle = unknown;

interface HostTimers {
  setTimeout(callback: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
  setInterval(callback: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle): void;
}

const host = (): HostTimers => globalThis as unknown as HostTimers;

export function after(ms: number, callback: () => void): TimerHandle {
  return host().setTimeout(callback, ms);
}

export function every(ms: number, callback: () => void): TimerHandle {
  return host().setInterval(callback, ms);
}

export function cancel(handle: TimerHandle | undefined): void {
  if (handle === undefined) return;
  host().clearTimeout(handle);
  host().clearInterval(handle);
}
