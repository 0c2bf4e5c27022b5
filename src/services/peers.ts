/**
 * `/peers`: the agents this agent may message (its messaging policy and theirs admit it), one directory
 * each with a message-only `inbox`. Each write sends one message from this agent, signed with its
 * identity key (CONTRACT section 9): `echo hi > peers/bob/inbox`. A peer the policy refuses is not
 * listed and refuses writes (EACCES); an unknown one does not exist (ENOENT).
 */
import { FsError } from '../fs/errors.js';
import { DEFAULT_MESSAGE_CAP } from '../fs/handles.js';
import { SyntheticFs, dir, message, type DirNode } from '../fs/synthetic.js';
import type { AgentRuntime } from '../runtime/agent-runtime.js';

export function peersService(rt: AgentRuntime, id: string): SyntheticFs {
  const refusal = (peer: string, path: string): FsError | undefined => rt.messages.refusal(id, peer, path);
  const peerDir = (peer: string): DirNode =>
    dir({
      inbox: message(
        async (data) => {
          await rt.delivery.send(id, peer, data, `/${peer}/inbox`);
        },
        {
          // Refused at open what the send would refuse (policy, a full inbox): shells report it then.
          admit: () => {
            const path = `/${peer}/inbox`;
            const refused = refusal(peer, path);
            if (refused) throw refused;
            rt.queues.admit(peer, path);
          },
          maxBytes: DEFAULT_MESSAGE_CAP,
          mode: 0o222,
        },
      ),
    });
  return new SyntheticFs(
    dir(
      {},
      {
        dynamic: {
          list: () => rt.agents.list().filter((peer) => peer !== id && rt.messages.mayMessage(id, peer)),
          get: (name) => (name !== id && rt.agents.has(name) ? peerDir(name) : undefined),
        },
      },
    ),
    'peers',
  );
}
