//! The Modbus TCP client of one source: connects with a timeout, reads the planned requests at the
//! polling interval, and turns registers into readings.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use haltless_schemas::outbound::{split_host_port, OutboundPolicy};
use haltless_schemas::{Quality, Reading};
use tokio::time::{interval, timeout, Interval, MissedTickBehavior};
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::prelude::{Client, SlaveContext};
use tokio_modbus::Slave;

use super::config::{ModbusPoint, RegisterType};
use super::decode::{value_from_bit, value_from_words};
use super::plan::{plan, ReadRequest};
use crate::source::outbound::{io_category, resolve_checked};
use crate::source::{Connection, Device, PointReading, PollOutcome, SourceError};

/// One Modbus TCP device and the points read from it.
pub struct ModbusDevice {
    endpoint: String,
    timeout: Duration,
    poll_interval: Duration,
    outbound: Arc<OutboundPolicy>,
    points: Vec<ModbusPoint>,
    requests: Vec<ReadRequest>,
    ticker: Option<Interval>,
    context: Option<Context>,
}

/// Words or bits of one answered request.
enum Answer {
    Words(Vec<u16>),
    Bits(Vec<bool>),
}

impl ModbusDevice {
    /// A device at `connection.endpoint` (`host:port`) serving `points`.
    pub fn new(connection: Connection, points: Vec<ModbusPoint>) -> Self {
        Self {
            endpoint: connection.endpoint,
            timeout: connection.timeout,
            poll_interval: connection.poll_interval,
            outbound: connection.outbound,
            requests: plan(&points),
            points,
            ticker: None,
            context: None,
        }
    }

    /// Opens the TCP connection to the first address of the endpoint that the outbound policy allows
    /// and that answers.
    pub async fn connect(&mut self) -> Result<(), SourceError> {
        let connect_error = |message: &str| SourceError::Connect {
            endpoint: self.endpoint.clone(),
            message: message.to_owned(),
        };
        let ms = self.timeout.as_millis() as u64;
        let (host, port) = split_host_port(&self.endpoint)
            .ok_or_else(|| SourceError::Config("the endpoint is not `host:port`".into()))?;
        let addrs =
            resolve_checked(&self.outbound, &self.endpoint, host, port, self.timeout).await?;
        let mut last = SourceError::Timeout(ms);
        for addr in addrs {
            match timeout(self.timeout, tokio_modbus::client::tcp::connect(addr)).await {
                Ok(Ok(context)) => {
                    self.context = Some(context);
                    return Ok(());
                }
                Ok(Err(e)) => last = connect_error(io_category(&e)),
                Err(_) => last = SourceError::Timeout(ms),
            }
        }
        Err(last)
    }

    /// Waits for the next polling tick, then reads every point.
    pub async fn next(&mut self) -> Result<PollOutcome, SourceError> {
        let period = self.poll_interval;
        let ticker = self.ticker.get_or_insert_with(|| {
            let mut t = interval(period);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        });
        ticker.tick().await;
        self.read_all().await
    }

    /// Reads every planned request once.
    pub async fn read_all(&mut self) -> Result<PollOutcome, SourceError> {
        let mut outcome = PollOutcome::default();
        for r in 0..self.requests.len() {
            let request = self.requests[r].clone();
            match self.read(&request).await? {
                Ok(answer) => {
                    let ts = crate::now_ms();
                    self.decode(&request, &answer, ts, &mut outcome);
                }
                Err(problem) => outcome.problems.push(problem),
            }
        }
        Ok(outcome)
    }

    /// One request: transport failures are errors, device exceptions are problems of these points.
    async fn read(&mut self, r: &ReadRequest) -> Result<Result<Answer, String>, SourceError> {
        let ms = self.timeout.as_millis() as u64;
        let endpoint = self.endpoint.clone();
        let context = self.context.as_mut().ok_or_else(|| SourceError::Connect {
            endpoint: endpoint.clone(),
            message: "not connected".into(),
        })?;
        context.set_slave(Slave(r.unit_id));
        let call = async {
            Ok::<_, tokio_modbus::Error>(match r.register {
                RegisterType::Coil => context
                    .read_coils(r.start, r.count)
                    .await?
                    .map(Answer::Bits),
                RegisterType::DiscreteInput => context
                    .read_discrete_inputs(r.start, r.count)
                    .await?
                    .map(Answer::Bits),
                RegisterType::Holding => context
                    .read_holding_registers(r.start, r.count)
                    .await?
                    .map(Answer::Words),
                RegisterType::Input => context
                    .read_input_registers(r.start, r.count)
                    .await?
                    .map(Answer::Words),
            })
        };
        match timeout(self.timeout, call).await {
            Err(_) => Err(SourceError::Timeout(ms)),
            Ok(Err(e)) => Err(SourceError::Connect {
                endpoint,
                message: format!("{}: {}", r.describe(), transport_category(&e)),
            }),
            Ok(Ok(Err(exception))) => Ok(Err(format!(
                "{}: the device answered with exception {exception:?} ({})",
                r.describe(),
                exception_hint(u8::from(exception))
            ))),
            Ok(Ok(Ok(answer))) => Ok(Ok(answer)),
        }
    }

    fn decode(&self, r: &ReadRequest, answer: &Answer, ts: i64, outcome: &mut PollOutcome) {
        for &i in &r.points {
            let point = &self.points[i];
            let at = r.offset_of(point);
            let width = usize::from(point.data_type.width());
            let value = match answer {
                Answer::Bits(bits) => bits.get(at).map(|b| value_from_bit(point, *b)),
                Answer::Words(words) => words
                    .get(at..at + width)
                    .and_then(|w| value_from_words(point, w)),
            };
            match value {
                Some(v) if v.is_finite() => outcome.readings.push(PointReading {
                    machine: point.machine.clone(),
                    reading: Reading {
                        metric: point.metric.clone(),
                        event_time_ms: ts,
                        value: v,
                        quality: Some(Quality::Good),
                    },
                }),
                Some(v) => outcome.problems.push(format!(
                    "{}/{}: unit {} {} {} decodes to {v}, which is not a finite number (check data_type and byte/word order)",
                    point.machine, point.metric, point.unit_id, point.register.label(), point.address
                )),
                None => outcome.problems.push(format!(
                    "{}/{}: the device answered {} with too few values",
                    point.machine, point.metric, r.describe()
                )),
            }
        }
    }

    /// Closes the connection, if any.
    pub async fn disconnect(&mut self) {
        if let Some(mut context) = self.context.take() {
            let _ = timeout(Duration::from_secs(1), context.disconnect()).await;
        }
        self.ticker = None;
    }
}

impl Device for ModbusDevice {
    fn connect(&mut self) -> BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(ModbusDevice::connect(self))
    }

    fn next(&mut self) -> BoxFuture<'_, Result<PollOutcome, SourceError>> {
        Box::pin(ModbusDevice::next(self))
    }

    fn disconnect(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(ModbusDevice::disconnect(self))
    }
}

/// A broken exchange in words that carry neither operating system text nor the bytes that answered
/// (which, from a service that is no Modbus device, would be that service's words).
fn transport_category(e: &tokio_modbus::Error) -> &'static str {
    match e {
        tokio_modbus::Error::Transport(io) => io_category(io),
        tokio_modbus::Error::Protocol(_) => {
            "the answer does not match the request (is it a Modbus TCP device?)"
        }
    }
}

fn exception_hint(code: u8) -> &'static str {
    match code {
        1 => "the device does not support this table: check register",
        2 => "no such address on the device: check address and data_type",
        3 => "the device refused the quantity: check address and data_type",
        4 => "the device failed while reading",
        6 => "the device is busy",
        10 | 11 => "the gateway cannot reach the unit: check unit_id",
        _ => "see the device's documentation",
    }
}
