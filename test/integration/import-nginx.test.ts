import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { spawnSwitchyard, stopSwitchyards, withTimeout } from '../helpers/cli.js';
import { listFixtures, runImportFixture } from '../helpers/import-fixtures.js';

after(stopSwitchyards);

describe('switchyard import nginx: fixtures translate, pass check, and reach the backends the original pointed at', () => {
  for (const name of listFixtures('nginx')) {
    test(name, { timeout: 60_000 }, () => runImportFixture('nginx', name));
  }
});
