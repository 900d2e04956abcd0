// Drives the real WorkflowChatTransport (npm @workflow/ai) and the AI SDK's message
// builder (readUIMessageStream from npm ai) against durably's chat_app.
// Usage: node transport.mjs BASE_URL drop|approve ; prints one JSON document.
import { readUIMessageStream } from 'ai';
import { WorkflowChatTransport } from '@workflow/ai';

const [base, mode] = process.argv.slice(2);
const requests = [];

// A fetch that records each request, and in "drop" mode cuts the first POST's answer
// after 6 events, as a dropped connection would: the transport must reconnect.
async function fetchThatDrops(url, init) {
  requests.push(`${init?.method ?? 'GET'} ${url.replace(base, '')}`);
  const res = await fetch(url, init);
  if (mode !== 'drop' || init?.method !== 'POST') return res;
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let seen = 0;
  let text = '';
  const body = new ReadableStream({
    async pull(controller) {
      const { value, done } = await reader.read();
      if (done) return controller.close();
      text += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = text.indexOf('\n\n')) >= 0) {
        const event = text.slice(0, cut + 2);
        text = text.slice(cut + 2);
        if (!event.startsWith('data:')) continue;
        controller.enqueue(new TextEncoder().encode(event));
        if (++seen === 6) {
          await reader.cancel();
          return controller.close();
        }
      }
    },
  });
  return new Response(body, { status: res.status, headers: res.headers });
}

const transport = new WorkflowChatTransport({ api: `${base}/api/chat`, fetch: fetchThatDrops });

async function send(messages, message) {
  const chunks = [];
  const stream = await transport.sendMessages({
    trigger: 'submit-message',
    chatId: 'chat-1',
    messages,
  });
  const tee = stream.pipeThrough(
    new TransformStream({ transform(chunk, c) { chunks.push(chunk); c.enqueue(chunk); } })
  );
  let last = message;
  for await (const m of readUIMessageStream({ message, stream: tee })) last = m;
  return { chunks, message: structuredClone(last) };
}

const user = { id: 'u1', role: 'user', parts: [{ type: 'text', text: 'refund order A1' }] };
const first = await send([user]);
const out = { first };
if (mode === 'approve') {
  const message = structuredClone(first.message);
  const part = message.parts.find((p) => p.state === 'approval-requested');
  // What useChat's addToolApprovalResponse does to the part.
  part.state = 'approval-responded';
  part.approval = { id: part.approval.id, approved: true };
  out.second = await send([user, message], message);
}
out.requests = requests;
console.log(JSON.stringify(out));
