// Drives rag-portal's catalog with Backstage's published client (@backstage/catalog-client).
// Usage: node check.mjs <baseUrl> <token>   (env CATALOG_LOCATION_URL: a catalog YAML URL
// holding Components "web" and "worker" owned by team-a, and Group "team-a").
import assert from 'node:assert/strict';
import { CatalogClient } from '@backstage/catalog-client';

const [baseUrl, token] = process.argv.slice(2);
const locationUrl = process.env.CATALOG_LOCATION_URL;
// The same entities with web's description "v2", for updateLocation.
const locationUrlV2 = process.env.CATALOG_LOCATION_URL_V2;
if (!baseUrl || !token || !locationUrl || !locationUrlV2) {
  console.error('usage: CATALOG_LOCATION_URL=... CATALOG_LOCATION_URL_V2=... node check.mjs <baseUrl> <token>');
  process.exit(2);
}

const client = new CatalogClient({
  discoveryApi: { getBaseUrl: async () => `${baseUrl}/api/catalog` },
});
const auth = { token };

const steps = [];
async function step(name, fn) {
  await fn();
  steps.push(name);
}

let locationId;
let webUid;

await step('addLocation dryRun', async () => {
  const dry = await client.addLocation({ type: 'url', target: locationUrl, dryRun: true }, auth);
  assert.equal(dry.exists, false);
  assert.deepEqual(dry.entities.map(e => e.metadata.name).sort(), ['team-a', 'web', 'worker']);
});

await step('addLocation', async () => {
  const added = await client.addLocation({ type: 'url', target: locationUrl }, auth);
  assert.equal(added.location.type, 'url');
  assert.equal(added.location.target, locationUrl);
  assert.equal(added.entities.length, 3);
  locationId = added.location.id;
});

await step('getLocationById', async () => {
  const location = await client.getLocationById(locationId, auth);
  assert.deepEqual(location, { id: locationId, type: 'url', target: locationUrl });
  assert.equal(await client.getLocationById('00000000-0000-0000-0000-000000000000', auth), undefined);
});

await step('getEntities', async () => {
  const { items } = await client.getEntities(
    {
      filter: { kind: 'Component' },
      fields: ['kind', 'metadata.name'],
      order: { field: 'metadata.name', order: 'desc' },
    },
    auth,
  );
  assert.deepEqual(items, [
    { kind: 'Component', metadata: { name: 'worker' } },
    { kind: 'Component', metadata: { name: 'web' } },
  ]);
  const either = await client.getEntities({ filter: [{ kind: 'group' }, { 'spec.type': 'batch' }] }, auth);
  assert.deepEqual(either.items.map(e => e.metadata.name).sort(), ['team-a', 'worker']);
});

await step('getEntitiesByRefs', async () => {
  const { items } = await client.getEntitiesByRefs(
    { entityRefs: ['component:default/web', 'component:default/missing', 'group:default/team-a'] },
    auth,
  );
  assert.equal(items.length, 3);
  assert.equal(items[0].metadata.name, 'web');
  assert.equal(items[1], undefined);
  assert.equal(items[2].kind, 'Group');
  webUid = items[0].metadata.uid;
  assert.ok(webUid);
});

await step('getLocations', async () => {
  // Our list items also carry {status: {lastRefreshAt, ...}}; the client reads `data`.
  const { items } = await client.getLocations({}, auth);
  assert.deepEqual(items, [{ id: locationId, type: 'url', target: locationUrl }]);
});

await step('getEntities and queryEntities with several order fields', async () => {
  const { items } = await client.getEntities(
    {
      fields: ['metadata.name'],
      order: [
        { field: 'kind', order: 'asc' },
        { field: 'metadata.name', order: 'desc' },
      ],
    },
    auth,
  );
  assert.deepEqual(items.map(e => e.metadata.name), ['worker', 'web', 'team-a']);
  const orderFields = [
    { field: 'kind', order: 'desc' },
    { field: 'metadata.name', order: 'asc' },
  ];
  const first = await client.queryEntities({ limit: 2, orderFields }, auth);
  assert.deepEqual(first.items.map(e => e.metadata.name), ['team-a', 'web']);
  const second = await client.queryEntities({ cursor: first.pageInfo.nextCursor, limit: 2 }, auth);
  assert.deepEqual(second.items.map(e => e.metadata.name), ['worker']);
  await assert.rejects(
    client.queryEntities({ orderFields: [{ field: 'kind', order: 'sideways' }] }, auth),
    err => err.statusCode === 400 && err.body.error.details[0].path === 'orderField[0]',
  );
});

await step('getEntitiesByRefs with filter and query', async () => {
  const entityRefs = ['component:default/web', 'component:default/worker', 'group:default/team-a'];
  const batch = await client.getEntitiesByRefs(
    { entityRefs, filter: { 'spec.type': 'batch' }, fields: ['metadata.name'] },
    auth,
  );
  assert.deepEqual(batch.items, [undefined, { metadata: { name: 'worker' } }, undefined]);
  const either = await client.getEntitiesByRefs(
    { entityRefs, filter: [{ kind: 'group' }, { 'spec.type': 'service' }], fields: ['metadata.name'] },
    auth,
  );
  assert.deepEqual(either.items, [{ metadata: { name: 'web' } }, undefined, { metadata: { name: 'team-a' } }]);
  // With a query object the client sends a predicate body ($all of query and filter).
  const both = await client.getEntitiesByRefs(
    { entityRefs, query: { kind: 'component' }, filter: { 'spec.type': 'service' }, fields: ['metadata.name'] },
    auth,
  );
  assert.deepEqual(both.items, [{ metadata: { name: 'web' } }, undefined, undefined]);
});

await step('queryEntities with cursor', async () => {
  const first = await client.queryEntities(
    { filter: { kind: 'component' }, limit: 1, orderFields: { field: 'metadata.name', order: 'asc' } },
    auth,
  );
  assert.equal(first.totalItems, 2);
  assert.deepEqual(first.items.map(e => e.metadata.name), ['web']);
  assert.ok(first.pageInfo.nextCursor);
  const second = await client.queryEntities({ cursor: first.pageInfo.nextCursor, limit: 1 }, auth);
  assert.deepEqual(second.items.map(e => e.metadata.name), ['worker']);
  assert.equal(second.pageInfo.nextCursor, undefined);
  assert.ok(second.pageInfo.prevCursor);
  const back = await client.queryEntities({ cursor: second.pageInfo.prevCursor, limit: 1 }, auth);
  assert.deepEqual(back.items.map(e => e.metadata.name), ['web']);
  const text = await client.queryEntities(
    { fullTextFilter: { term: 'WORK', fields: ['metadata.name'] } },
    auth,
  );
  assert.deepEqual(text.items.map(e => e.metadata.name), ['worker']);
  const streamed = [];
  for await (const page of client.streamEntities({ filter: { kind: 'component' }, pageSize: 1 }, auth)) {
    streamed.push(...page.map(e => e.metadata.name));
  }
  assert.deepEqual(streamed.sort(), ['web', 'worker']);
});

await step('queryEntities with predicate query', async () => {
  // A `query` object makes the client POST /entities/by-query.
  const query = { $any: [{ kind: 'group' }, { 'spec.type': { $in: ['batch'] } }] };
  const first = await client.queryEntities(
    { query, limit: 1, orderFields: { field: 'metadata.name', order: 'asc' } },
    auth,
  );
  assert.equal(first.totalItems, 2);
  assert.deepEqual(first.items.map(e => e.metadata.name), ['team-a']);
  const second = await client.queryEntities({ cursor: first.pageInfo.nextCursor, limit: 1 }, auth);
  assert.deepEqual(second.items.map(e => e.metadata.name), ['worker']);
  assert.equal(second.pageInfo.nextCursor, undefined);
  const not = await client.queryEntities(
    { query: { kind: 'component', $not: { 'spec.type': 'batch' } }, fields: ['metadata.name'] },
    auth,
  );
  assert.deepEqual(not.items, [{ metadata: { name: 'web' } }]);
  await assert.rejects(
    client.queryEntities({ query: { kind: { $regex: 'x' } } }, auth),
    err => err.statusCode === 400 && err.body.error.details[0].path === 'query.kind',
  );
});

await step('getEntityFacets with predicate query', async () => {
  const { facets } = await client.getEntityFacets(
    { facets: ['kind'], query: { 'metadata.name': { $exists: true }, $not: { kind: 'group' } } },
    auth,
  );
  assert.deepEqual(facets.kind, [{ value: 'Component', count: 2 }]);
});

await step('getEntityByRef', async () => {
  const web = await client.getEntityByRef('component:default/web', auth);
  assert.equal(web.metadata.uid, webUid);
  assert.ok(web.relations.some(r => r.type === 'ownedBy' && r.targetRef === 'group:default/team-a'));
  assert.equal(web.metadata.annotations['backstage.io/managed-by-location'], `url:${locationUrl}`);
  const team = await client.getEntityByRef({ kind: 'group', namespace: 'default', name: 'team-a' }, auth);
  assert.ok(team.relations.some(r => r.type === 'ownerOf' && r.targetRef === 'component:default/web'));
  assert.equal(await client.getEntityByRef('component:default/nope', auth), undefined);
});

await step('getEntityFacets', async () => {
  const { facets } = await client.getEntityFacets(
    { facets: ['spec.type', 'kind'], filter: { kind: 'component' } },
    auth,
  );
  assert.deepEqual(facets['spec.type'], [
    { value: 'batch', count: 1 },
    { value: 'service', count: 1 },
  ]);
  assert.deepEqual(facets.kind, [{ value: 'Component', count: 2 }]);
});

await step('validateEntity', async () => {
  const good = {
    apiVersion: 'backstage.io/v1alpha1',
    kind: 'Component',
    metadata: { name: 'fine' },
    spec: { type: 'service', lifecycle: 'production', owner: 'team-a' },
  };
  assert.deepEqual(await client.validateEntity(good, `url:${locationUrl}`, auth), { valid: true });
  const bad = { ...good, metadata: { name: 'not fine!' } };
  const result = await client.validateEntity(bad, `url:${locationUrl}`, auth);
  assert.equal(result.valid, false);
  assert.ok(result.errors.length >= 1);
  assert.match(result.errors[0].message, /metadata\.name/);
});

await step('analyzeLocation', async () => {
  const analysis = await client.analyzeLocation({ location: { type: 'url', target: locationUrl } }, auth);
  assert.deepEqual(analysis.existingEntityFiles.map(f => f.entity.metadata.name).sort(), ['team-a', 'web', 'worker']);
  assert.ok(analysis.existingEntityFiles.every(f => f.isRegistered && f.location.target === locationUrl));
  assert.deepEqual(analysis.generateEntities, []);
});

await step('queryLocations and streamLocations', async () => {
  const prefix = locationUrl.slice(0, locationUrl.lastIndexOf('/') + 1);
  const page = await client.queryLocations({ limit: 1, query: { type: 'url', target: { $hasPrefix: prefix } } }, auth);
  assert.deepEqual(page.items, [{ id: locationId, type: 'url', target: locationUrl }]);
  assert.equal(page.totalItems, 1);
  const none = await client.queryLocations({ query: { type: 'file' } }, auth);
  assert.deepEqual([none.items, none.totalItems], [[], 0]);
  const pages = [];
  for await (const items of client.streamLocations({ query: { target: locationUrl } }, auth)) pages.push(items);
  assert.deepEqual(pages, [[{ id: locationId, type: 'url', target: locationUrl }]]);
});

await step('getLocationByEntity and getLocationByRef', async () => {
  const expected = { id: locationId, type: 'url', target: locationUrl };
  assert.deepEqual(await client.getLocationByEntity('component:default/web', auth), expected);
  assert.deepEqual(await client.getLocationByRef(`url:${locationUrl}`, auth), expected);
});

await step('getEntityAncestors', async () => {
  const ancestry = await client.getEntityAncestors({ entityRef: 'component:default/web' }, auth);
  assert.equal(ancestry.rootEntityRef.toLowerCase(), 'component:default/web');
  assert.equal(ancestry.items.length, 1);
  assert.equal(ancestry.items[0].entity.metadata.name, 'web');
  assert.deepEqual(ancestry.items[0].parentEntityRefs, []);
});

await step('updateLocation', async () => {
  const updated = await client.updateLocation(locationId, { type: 'url', target: locationUrlV2 }, auth);
  assert.deepEqual(updated, { id: locationId, type: 'url', target: locationUrlV2 });
  const web = await client.getEntityByRef('component:default/web', auth);
  assert.equal(web.metadata.description, 'v2');
  assert.equal(web.metadata.annotations['backstage.io/managed-by-location'], `url:${locationUrlV2}`);
});

await step('refreshEntity', async () => {
  await client.refreshEntity('component:default/web', auth);
});

await step('removeEntityByUid', async () => {
  await client.removeEntityByUid(webUid, auth);
  assert.equal(await client.getEntityByRef('component:default/web', auth), undefined);
});

await step('removeLocationById', async () => {
  await client.removeLocationById(locationId, auth);
  assert.equal(await client.getLocationById(locationId, auth), undefined);
  const { items } = await client.getEntities({ filter: { kind: 'component' } }, auth);
  assert.deepEqual(items, []);
});

console.log(JSON.stringify({ ok: true, steps }));
