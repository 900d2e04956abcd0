// The support chat page: the AI SDK's useChat with @workflow/ai's WorkflowChatTransport,
// talking to durably's chat_app. Bundled into ../static/chat.js by `npm run build`.
import React, { useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { useChat } from '@ai-sdk/react';
import { lastAssistantMessageIsCompleteWithApprovalResponses } from 'ai';
import { WorkflowChatTransport } from '@workflow/ai';

const RUN_KEY = 'durably-chat:run';
const MESSAGES_KEY = 'durably-chat:messages';

// The chat survives a reload: the messages as they were when the last request was sent
// (or its answer finished), and the run whose answer is still streaming, if any.
const saved = JSON.parse(localStorage.getItem(MESSAGES_KEY) || '[]');
const activeRun = localStorage.getItem(RUN_KEY);

const transport = new WorkflowChatTransport({
  api: '/api/chat',
  onChatSendMessage: (response) =>
    localStorage.setItem(RUN_KEY, response.headers.get('x-workflow-run-id')),
  onChatEnd: () => localStorage.removeItem(RUN_KEY),
  prepareReconnectToStreamRequest: ({ api, ...rest }) => {
    const run = localStorage.getItem(RUN_KEY);
    return { ...rest, api: run ? `/api/chat/${encodeURIComponent(run)}/stream` : api };
  },
});

function Part({ part, onApprove }) {
  if (part.type === 'text') {
    // Text a failed model attempt streamed before its retry said otherwise.
    if (part.providerMetadata?.durably?.discarded) return null;
    return <span className="text">{part.text}</span>;
  }
  if (part.type.startsWith('tool-')) {
    const name = part.type.slice(5);
    return (
      <div className="tool" data-state={part.state}>
        <code>{name}({JSON.stringify(part.input ?? {})})</code>
        {part.state === 'output-available' && <div className="out">→ {String(part.output)}</div>}
        {part.state === 'output-denied' && <div className="out">denied</div>}
        {part.state === 'approval-requested' && (
          <div className="approval">
            <button data-testid="approve" onClick={() => onApprove(part.approval.id, true)}>
              Approve
            </button>
            <button data-testid="deny" onClick={() => onApprove(part.approval.id, false)}>
              Deny
            </button>
          </div>
        )}
      </div>
    );
  }
  return null;
}

function App() {
  const [input, setInput] = useState('');
  const { messages, sendMessage, status, addToolApprovalResponse } = useChat({
    id: 'support',
    messages: saved,
    transport,
    resume: Boolean(activeRun),
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
  });
  useEffect(() => {
    if (status === 'submitted' || status === 'ready') {
      localStorage.setItem(MESSAGES_KEY, JSON.stringify(messages));
    }
  }, [status, messages]);
  const onApprove = (id, approved) => addToolApprovalResponse({ id, approved });
  return (
    <main>
      <h1>Support chat <small>durably + pydantic-ai + useChat</small></h1>
      <ol id="messages">
        {messages.map((m) => (
          <li key={m.id} className={m.role} data-role={m.role}>
            {m.parts.map((p, i) => (
              <Part key={i} part={p} onApprove={onApprove} />
            ))}
          </li>
        ))}
      </ol>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (!input.trim()) return;
          sendMessage({ text: input });
          setInput('');
        }}
      >
        <input
          id="prompt"
          value={input}
          placeholder="Ask about order A123, or ask for a refund"
          onChange={(e) => setInput(e.target.value)}
        />
        <button id="send" type="submit" disabled={status !== 'ready'}>
          Send
        </button>
        <span id="status" data-status={status}>{status}</span>
        <button
          type="button"
          id="clear"
          onClick={() => {
            localStorage.clear();
            location.reload();
          }}
        >
          New chat
        </button>
      </form>
    </main>
  );
}

createRoot(document.getElementById('root')).render(<App />);
