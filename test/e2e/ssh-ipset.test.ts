import { after, test } from 'node:test';
import { teardown } from '../helpers/e2e.js';
import { sshScenario } from '../helpers/ssh-scenario.js';

const cleanup = teardown(after);

/** The SSH scenario of ssh.test.ts with the iptables+ipset enforcer. */
test('iptables+ipset: a real ssh brute force is banned, its open session cut, the allowlisted friend unaffected, the ban lifted after bantime', async () => {
  await sshScenario('iptables', { after: cleanup });
});
