//! Which read requests cover a point map: points of one unit and table whose addresses touch or overlap
//! are read together, up to the protocol's limit per request.

use super::config::{ModbusPoint, RegisterType};

/// One read request and the points it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRequest {
    /// Unit id.
    pub unit_id: u8,
    /// Data table.
    pub register: RegisterType,
    /// First address read.
    pub start: u16,
    /// Registers (or bits) read.
    pub count: u16,
    /// Indices of the points served, into the map the plan was made from.
    pub points: Vec<usize>,
}

impl ReadRequest {
    /// The offset of `point` within this request's answer.
    pub fn offset_of(&self, point: &ModbusPoint) -> usize {
        usize::from(point.address - self.start)
    }

    /// A short description for errors, e.g. `unit 1 holding registers 100..=103`.
    pub fn describe(&self) -> String {
        let last = u32::from(self.start) + u32::from(self.count) - 1;
        format!(
            "unit {} {} {}..={last}",
            self.unit_id,
            self.register.label(),
            self.start
        )
    }
}

/// The fewest contiguous requests that read every point (a point's map must have passed its check).
pub fn plan(points: &[ModbusPoint]) -> Vec<ReadRequest> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by_key(|&i| (points[i].unit_id, points[i].register, points[i].address));
    let mut requests: Vec<ReadRequest> = Vec::new();
    for i in order {
        let p = &points[i];
        let start = u32::from(p.address);
        let end = start + u32::from(p.data_type.width());
        if let Some(r) = requests.last_mut() {
            let r_end = u32::from(r.start) + u32::from(r.count);
            let new_end = r_end.max(end);
            if r.unit_id == p.unit_id
                && r.register == p.register
                && start <= r_end
                && new_end - u32::from(r.start) <= u32::from(p.register.max_per_request())
            {
                // Fits: new_end - start is at most the per-request limit, far below u16::MAX.
                r.count = (new_end - u32::from(r.start)) as u16;
                r.points.push(i);
                continue;
            }
        }
        requests.push(ReadRequest {
            unit_id: p.unit_id,
            register: p.register,
            start: p.address,
            count: p.data_type.width(),
            points: vec![i],
        });
    }
    requests
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::config::{DataType, Order};
    use super::*;

    fn p(unit_id: u8, register: RegisterType, address: u16, data_type: DataType) -> ModbusPoint {
        ModbusPoint {
            machine: "m".into(),
            metric: format!("p{address}"),
            unit_id,
            register,
            address,
            data_type,
            byte_order: Order::Big,
            word_order: Order::Big,
            scale: 1.0,
            offset: 0.0,
        }
    }

    fn summary(points: &[ModbusPoint]) -> Vec<(u8, RegisterType, u16, u16, Vec<usize>)> {
        plan(points)
            .into_iter()
            .map(|r| (r.unit_id, r.register, r.start, r.count, r.points))
            .collect()
    }

    #[test]
    fn merges_touching_and_overlapping_points_only() {
        use DataType::*;
        use RegisterType::*;
        let points = [
            p(1, Holding, 10, F32), // 10..12
            p(1, Holding, 0, U16),  // 0
            p(1, Holding, 12, U16), // touches 10..12
            p(1, Holding, 11, U16), // overlaps
            p(1, Holding, 20, F64), // gap: new request
            p(2, Holding, 13, U16), // other unit
            p(1, Input, 13, U16),   // other table
            p(1, Coil, 0, Bool),
            p(1, Coil, 1, Bool),
        ];
        assert_eq!(
            summary(&points),
            [
                (1, Coil, 0, 2, vec![7, 8]),
                (1, Holding, 0, 1, vec![1]),
                (1, Holding, 10, 3, vec![0, 3, 2]),
                (1, Holding, 20, 4, vec![4]),
                (1, Input, 13, 1, vec![6]),
                (2, Holding, 13, 1, vec![5]),
            ]
        );
    }

    #[test]
    fn splits_at_the_protocol_limit() {
        let points: Vec<_> = (0..130)
            .map(|a| p(1, RegisterType::Input, a, DataType::U16))
            .collect();
        let requests = plan(&points);
        assert_eq!(requests.len(), 2);
        assert_eq!((requests[0].start, requests[0].count), (0, 125));
        assert_eq!((requests[1].start, requests[1].count), (125, 5));
        assert_eq!(requests[1].describe(), "unit 1 input registers 125..=129");
        assert_eq!(requests[1].offset_of(&points[127]), 2);
    }
}
