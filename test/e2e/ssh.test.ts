import { after, test } from 'node:test';
import { teardown } from '../helpers/e2e.js';
import { sshScenario } from '../helpers/ssh-scenario.js';

const cleanup = teardown(after);

/** Seed-style SSH brute force against a real sshd, enforced with nftables (see test/helpers/ssh-scenario.ts). */
test('nftables: a real ssh brute force is banned, its open session cut, the allowlisted friend unaffected, the ban lifted after bantime', async () => {
  await sshScenario('nftables', { after: cleanup });
});
