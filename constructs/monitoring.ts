/**
 * What a database renders so that people see, without exec'ing into a pod, how far its archive
 * is behind, when it was last backed up and how far back it can be recovered, and are alerted
 * before its volume fills: a PodMonitor that scrapes the `archiver` sidecars' metrics port, a
 * PrometheusRule with the alerts (alert-rules.ts) and a Grafana dashboard (grafana-dashboard.ts)
 * in a ConfigMap labelled for Grafana's dashboard sidecar.
 *
 * The PodMonitor and PrometheusRule are the Prometheus operator's custom resources, typed from its
 * CRDs in ../shared/crds (imports/, generated offline by `npm run import`). A cluster without the
 * operator refuses them: `monitoring: { enabled: false }`.
 */
import { ApiObject, Duration } from 'cdk8s';
import { k8s } from 'cdk8s-plus-27';
import { Construct } from 'constructs';
import { METRICS_PATH, METRICS_PORT_NAME } from '../contract';
import { PodMonitor } from '../imports/podmonitor-monitoring.coreos.com';
import { PrometheusRule, PrometheusRuleSpecGroupsRulesExpr } from '../imports/prometheusrule-monitoring.coreos.com';
import { ArchiveAlertProps, archiveAlertRules, checkAlertProps, resolveAlertThresholds } from './alert-rules';
import { archiveDashboard, formatDashboard } from './grafana-dashboard';
import { show } from './validation';

/** The label Grafana's dashboard sidecar looks for (the Grafana Helm chart's default). */
export const GRAFANA_DASHBOARD_LABEL = 'grafana_dashboard';

/** The database's monitoring (all on by default). */
export interface MonitoringProps {
  /**
   * Render the PodMonitor, the PrometheusRule and the dashboard. `false` for a cluster without
   * the Prometheus operator (its API server would refuse them): the sidecars serve their metrics
   * all the same.
   * @default true
   */
  readonly enabled?: boolean;
  /**
   * Labels of the PodMonitor, the PrometheusRule and the dashboard's ConfigMap, besides the
   * database's: what the Prometheus object's podMonitorSelector and ruleSelector select on (the
   * kube-prometheus-stack chart's default is `release: <its release name>`).
   * @default - the database's labels only
   */
  readonly labels?: Record<string, string>;
  /**
   * How often Prometheus scrapes each member's sidecar.
   * @default Duration.seconds(30)
   */
  readonly scrapeInterval?: Duration;
  /**
   * The alerts' thresholds, or `{ enabled: false }` for no PrometheusRule.
   * @default - every alert, with the thresholds' defaults
   */
  readonly alerts?: ArchiveAlertProps;
  /**
   * Render the Grafana dashboard: a ConfigMap `{name}-dashboard` labelled `grafana_dashboard: "1"`
   * (Grafana's dashboard sidecar must watch the database's namespace).
   * @default true
   */
  readonly dashboard?: boolean;
}

/** What the database passes on: its identity and what the defaults of the thresholds come from. */
export interface DatabaseMonitoringProps {
  readonly name: string;
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly selectorLabels: Readonly<Record<string, string>>;
  readonly replicas: number;
  readonly backupSchedule?: string;
  readonly retentionWindow?: Duration;
  /** Whether the database serves TLS from a Secret: the certificate alerts. @default false */
  readonly tls?: boolean;
  readonly monitoring?: MonitoringProps;
}

/**
 * The PodMonitor (`PodMonitor`), PrometheusRule (`Rules`) and dashboard ConfigMap (`Dashboard`) of
 * one database, each present only when enabled.
 */
export class DatabaseMonitoring extends Construct {
  public readonly podMonitor?: PodMonitor;
  public readonly rules?: PrometheusRule;
  public readonly dashboard?: k8s.KubeConfigMap;

  constructor(scope: Construct, id: string, props: DatabaseMonitoringProps) {
    super(scope, id);
    const monitoring = props.monitoring ?? {};
    this.node.addValidation({ validate: () => checkMonitoring('monitoring', props.monitoring) });
    if (monitoring.enabled === false) return;
    const metadata = (name: string) => ({ name, namespace: props.namespace, labels: { ...props.labels, ...monitoring.labels } });
    const interval = monitoring.scrapeInterval instanceof Duration ? monitoring.scrapeInterval.toSeconds() : 30;

    this.podMonitor = new PodMonitor(this, 'PodMonitor', {
      metadata: metadata(props.name),
      spec: {
        selector: { matchLabels: { ...props.selectorLabels } },
        namespaceSelector: { matchNames: [props.namespace] },
        podMetricsEndpoints: [
          {
            port: METRICS_PORT_NAME,
            path: METRICS_PATH,
            interval: `${interval}s`,
            // The alerts and the dashboard select a database's series by `namespace` and `database`.
            relabelings: [{ sourceLabels: ['__meta_kubernetes_pod_label_app_kubernetes_io_instance'], targetLabel: 'database' }],
          },
        ],
      },
    });

    if (monitoring.alerts?.enabled !== false) {
      const thresholds = resolveAlertThresholds(monitoring.alerts, { schedule: props.backupSchedule, retentionWindow: props.retentionWindow });
      const group = archiveAlertRules({ namespace: props.namespace, name: props.name, replicas: props.replicas, thresholds, tls: props.tls });
      this.rules = new PrometheusRule(this, 'Rules', {
        metadata: metadata(props.name),
        spec: {
          groups: [{ name: group.name, rules: group.rules.map((rule) => ({ ...rule, expr: PrometheusRuleSpecGroupsRulesExpr.fromString(rule.expr) })) }],
        },
      });
    }

    if (monitoring.dashboard !== false) {
      const dashboard = archiveDashboard({ namespace: props.namespace, name: props.name, tls: props.tls });
      const meta = metadata(`${props.name}-dashboard`);
      this.dashboard = new k8s.KubeConfigMap(this, 'Dashboard', {
        metadata: { ...meta, labels: { ...meta.labels, [GRAFANA_DASHBOARD_LABEL]: '1' } },
        data: { [`${props.namespace}-${props.name}.json`]: formatDashboard(dashboard) },
      });
    }
  }

  /** The objects rendered (for collision checks and annotations). */
  public get apiObjects(): ApiObject[] {
    return [this.podMonitor, this.rules, this.dashboard].filter((o): o is ApiObject => o !== undefined);
  }
}

/** Every problem of the `monitoring` prop, as `field.x: message`. */
export function checkMonitoring(field: string, monitoring: MonitoringProps | undefined): string[] {
  if (monitoring === undefined) return [];
  const errors: string[] = [];
  if (monitoring.enabled !== undefined && typeof monitoring.enabled !== 'boolean') errors.push(`${field}.enabled: ${show(monitoring.enabled)} is not true or false`);
  if (monitoring.dashboard !== undefined && typeof monitoring.dashboard !== 'boolean') errors.push(`${field}.dashboard: ${show(monitoring.dashboard)} is not true or false`);
  if (monitoring.scrapeInterval !== undefined) {
    const ms = monitoring.scrapeInterval instanceof Duration ? monitoring.scrapeInterval.toMilliseconds() : NaN;
    if (!(ms >= 5_000 && ms <= 300_000 && ms % 1000 === 0)) {
      errors.push(`${field}.scrapeInterval: ${show(monitoring.scrapeInterval instanceof Duration ? `${ms} ms` : monitoring.scrapeInterval)} is not whole seconds from 5 s to 5 min: write e.g. Duration.seconds(30)`);
    }
  }
  for (const [key, value] of Object.entries(monitoring.labels ?? {})) {
    if (!/^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/.test(key) || typeof value !== 'string' || !/^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/.test(value)) {
      errors.push(`${field}.labels: ${show(key)}: ${show(value)} is not a Kubernetes label: keys and values of letters, digits, '-', '_' and '.' (values at most 63), e.g. release: "kube-prometheus-stack"`);
    }
  }
  errors.push(...checkAlertProps(`${field}.alerts`, monitoring.alerts));
  return errors;
}
