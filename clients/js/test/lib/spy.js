// A `ws` WebSocket that records what each connection sent, received and how it closed, so the
// end-to-end tests can see the frames the client keeps to itself (ping/pong, subscribe).
import WebSocket from 'ws';

export function spyWebSocket() {
  const sockets = []; // {url, token, opened, sent: [text], received: [text], closeCode, closedByClient}
  class SpyWebSocket extends WebSocket {
    constructor(url) {
      super(url);
      const record = {
        url, token: new URL(url).searchParams.get('authorization'), opened: false,
        sent: [], received: [], closeCode: null, closedByClient: false,
      };
      this.record = record;
      sockets.push(record);
      this.on('open', () => { record.opened = true; });
      this.on('message', (data) => record.received.push(String(data)));
      this.on('close', (code) => { record.closeCode = code; });
    }

    send(data, ...rest) {
      this.record.sent.push(String(data));
      return super.send(data, ...rest);
    }

    close(...args) {
      this.record.closedByClient = true;
      return super.close(...args);
    }
  }
  return { SpyWebSocket, sockets };
}

/** The parsed JSON frames of `texts` (non-JSON ones left out). */
export function frames(texts) {
  return texts.flatMap((text) => { try { return [JSON.parse(text)]; } catch { return []; } });
}
