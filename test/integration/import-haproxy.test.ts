import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { spawnSwitchyard, stopSwitchyards, withTimeout } from '../helpers/cli.js';
import { listFixtures, runImportFixture } from '../helpers/import-fixtures.js';

after(stopSwitchyards);

describe('switchyard import haproxy: fixtures', () => {
  for (const name of listFixtures('haproxy')) {
    test(name, { timeout: 60_000 }, async () => {
      await runImportFixture('haproxy', name);
    });
  }
});
