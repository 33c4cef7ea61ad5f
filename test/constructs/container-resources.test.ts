/**
 * Container resources (constructs/container-resources.ts): the defaults merged under what the user
 * gives as Kubernetes users expect (a limit alone is the request too; a default limit never below
 * the request), and the checks that keep the API server from rejecting the StatefulSet.
 */
import { describe, expect, it } from 'vitest';
import { checkContainerResources, resourcesWithDefaults } from '../../constructs';
import { container, find, postgresContainer, seedProps, synthDatabase } from './fixtures';

const POSTGRES_DEFAULTS = { requests: { cpu: '500m', memory: '1Gi' }, limitsEqualRequests: ['memory'] as const };
const SIDECAR_DEFAULTS = { requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } };

describe('resourcesWithDefaults', () => {
  it('renders the defaults when nothing is given', () => {
    expect(resourcesWithDefaults(POSTGRES_DEFAULTS, undefined)).toStrictEqual({ requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '1Gi' } });
    expect(resourcesWithDefaults(SIDECAR_DEFAULTS, {})).toStrictEqual({ requests: { cpu: '100m', memory: '256Mi' }, limits: { memory: '512Mi' } });
  });

  it('makes a limit given alone the request too, as Kubernetes does (512Mi alone no longer leaves the 1Gi default request above it)', () => {
    expect(resourcesWithDefaults(POSTGRES_DEFAULTS, { limits: { memory: '512Mi' } })).toStrictEqual({ requests: { cpu: '500m', memory: '512Mi' }, limits: { memory: '512Mi' } });
    expect(resourcesWithDefaults(POSTGRES_DEFAULTS, { limits: { cpu: '250m' } })).toStrictEqual({ requests: { cpu: '250m', memory: '1Gi' }, limits: { cpu: '250m', memory: '1Gi' } });
    expect(resourcesWithDefaults(SIDECAR_DEFAULTS, { limits: { memory: '128Mi' } })).toStrictEqual({ requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '128Mi' } });
  });

  it('keeps the PostgreSQL memory limit at its request, and raises a default limit below a request given', () => {
    expect(resourcesWithDefaults(POSTGRES_DEFAULTS, { requests: { memory: '4Gi' } })).toStrictEqual({ requests: { cpu: '500m', memory: '4Gi' }, limits: { memory: '4Gi' } });
    expect(resourcesWithDefaults(SIDECAR_DEFAULTS, { requests: { memory: '1Gi' } })).toStrictEqual({ requests: { cpu: '100m', memory: '1Gi' }, limits: { memory: '1Gi' } });
    expect(resourcesWithDefaults(SIDECAR_DEFAULTS, { requests: { memory: '300Mi' } })).toStrictEqual({ requests: { cpu: '100m', memory: '300Mi' }, limits: { memory: '512Mi' } });
  });
});

describe('checkContainerResources', () => {
  it('fails on a limit given below the request given beside it, for each resource', () => {
    expect(checkContainerResources('resources', { requests: { cpu: '2', memory: '2Gi' }, limits: { cpu: '1500m', memory: '1Gi' } })).toStrictEqual([
      'resources.limits.cpu: "1500m" is below requests.cpu "2": the API server rejects a container whose limit is below its request (the StatefulSet would not sync); raise the limit to at least "2", or lower the request (a limit given alone is the request too)',
      'resources.limits.memory: "1Gi" is below requests.memory "2Gi": the API server rejects a container whose limit is below its request (the StatefulSet would not sync); raise the limit to at least "2Gi", or lower the request (a limit given alone is the request too)',
    ]);
  });

  it('accepts a limit equal to or above its request, in any units', () => {
    expect(checkContainerResources('resources', { requests: { cpu: '0.5', memory: '1024Mi' }, limits: { cpu: '500m', memory: '1Gi' } })).toStrictEqual([]);
    expect(checkContainerResources('resources', { requests: { memory: '1G' }, limits: { memory: '1Gi' } })).toStrictEqual([]);
  });
});

describe('the database\'s containers', () => {
  it('render a PostgreSQL memory limit given alone as the request too, and the sidecar\'s raised default limit', () => {
    const { objects } = synthDatabase(seedProps({
      resources: { limits: { memory: '512Mi' } },
      archiver: { ...seedProps().archiver, resources: { requests: { memory: '768Mi' } } },
    }));
    const statefulSet = find(objects, 'StatefulSet', 'wal-postgres');
    expect(postgresContainer(statefulSet).resources).toStrictEqual({ requests: { cpu: '500m', memory: '512Mi', 'ephemeral-storage': '256Mi' }, limits: { memory: '512Mi', 'ephemeral-storage': '1Gi' } });
    expect(container(statefulSet, 'archiver').resources).toStrictEqual({ requests: { cpu: '100m', memory: '768Mi', 'ephemeral-storage': '128Mi' }, limits: { memory: '768Mi', 'ephemeral-storage': '512Mi' } });
  });
});
