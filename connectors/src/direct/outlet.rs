//! Polled readings to Kafka by the one admission path ([`crate::admission`]): each reading checked like
//! those of `POST /api/v1/ingest` ([`check_reading`]), then the same machine checks, the tier's write limit
//! (each delivery is one write) and the same `acks=all` writer.

use std::sync::Arc;

use haltless_schemas::{Reading, Source};
use uuid::Uuid;

use crate::admission::{Admission, Charge, Delivery, Refusal};
use crate::gateway::validate::{check_reading, MachineReadings};
use crate::gateway::GatewayConfig;
use crate::source::{Outlet, PointReading, SourceError};

/// Delivers one source's readings through admission.
#[derive(Clone)]
pub struct KafkaOutlet {
    admission: Admission,
    gateway: Arc<GatewayConfig>,
    tenant_id: Uuid,
    source: Source,
}

impl KafkaOutlet {
    /// An outlet for a source of `tenant_id` whose batches are labelled `source`.
    pub fn new(
        admission: Admission,
        gateway: Arc<GatewayConfig>,
        tenant_id: Uuid,
        source: Source,
    ) -> Self {
        Self {
            admission,
            gateway,
            tenant_id,
            source,
        }
    }
}

/// Readings grouped by machine in order of first appearance, and a note for each one that failed its
/// check.
fn checked(
    readings: Vec<PointReading>,
    gateway: &GatewayConfig,
    now: i64,
) -> (Vec<MachineReadings>, Vec<String>) {
    let mut groups: Vec<MachineReadings> = Vec::new();
    let mut invalid = Vec::new();
    for r in readings {
        if let Err(e) = check_reading(&r.machine, &r.reading, gateway, now) {
            invalid.push(format!(
                "{}/{}: {} {}",
                r.machine, r.reading.metric, e.field, e.reason
            ));
            continue;
        }
        let reading: Reading = r.reading;
        match groups.iter_mut().find(|g| g.machine == r.machine) {
            Some(group) => group.readings.push(reading),
            None => groups.push(MachineReadings {
                machine: r.machine,
                readings: vec![reading],
            }),
        }
    }
    (groups, invalid)
}

impl Outlet for KafkaOutlet {
    async fn deliver(&self, readings: Vec<PointReading>) -> Result<(), SourceError> {
        let (machines, invalid) = checked(readings, &self.gateway, crate::now_ms());
        if !machines.is_empty() {
            let delivery = Delivery {
                tenant_id: self.tenant_id,
                source: self.source,
                machines,
                allowed: None,
                charge: Charge::OneWrite,
            };
            self.admission
                .admit(delivery)
                .await
                .map_err(|refusal| match refusal {
                    Refusal::UnknownMachines(_) | Refusal::RetiredMachines(_) => {
                        SourceError::Config(refusal.to_string())
                    }
                    other => SourceError::Delivery(other.to_string()),
                })?;
        }
        if invalid.is_empty() {
            Ok(())
        } else {
            Err(SourceError::Value(format!(
                "readings refused: {}",
                invalid.join("; ")
            )))
        }
    }
}
