"""Describe answers: the global list of sObjects and one object's typed field metadata."""

from __future__ import annotations

from typing import Any

from sync.sandbox.schema import DeleteRule, FieldDef, ObjectDef, Schema

_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}


def _urls(obj: ObjectDef, version: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{obj.name}"
    return {
        "sobject": base,
        "describe": f"{base}/describe",
        "rowTemplate": f"{base}/{{ID}}",
    }


def object_summary(obj: ObjectDef, version: str) -> dict[str, Any]:
    """One entry of the describe-global list."""
    custom = obj.name.endswith("__c")
    return {
        "name": obj.name,
        "label": obj.label,
        "labelPlural": obj.label_plural,
        "keyPrefix": obj.key_prefix,
        "custom": custom,
        "customSetting": False,
        "createable": True,
        "updateable": True,
        "deletable": True,
        "undeletable": False,
        "queryable": True,
        "retrieveable": True,
        "searchable": True,
        "replicateable": True,
        "triggerable": True,
        "layoutable": True,
        "mergeable": obj.name in ("Account", "Contact"),
        "deprecatedAndHidden": False,
        "urls": _urls(obj, version),
    }


def describe_global(schema: Schema, version: str) -> dict[str, Any]:
    """``GET /sobjects``."""
    return {
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": [object_summary(o, version) for o in schema.objects.values()],
    }


def object_info(obj: ObjectDef, version: str) -> dict[str, Any]:
    """``GET /sobjects/{T}``: the object's summary (recent items are always empty here)."""
    return {"objectDescribe": object_summary(obj, version), "recentItems": []}


def field_describe(f: FieldDef) -> dict[str, Any]:
    """One field's metadata, with the keys describe clients read."""
    default = f.default
    return {
        "name": f.name,
        "label": f.label,
        "type": f.type,
        "soapType": _SOAP_TYPES.get(f.type, "xsd:string"),
        "length": f.length,
        "byteLength": f.length * 3,
        "digits": f.precision if f.type == "int" else 0,
        "precision": f.precision if f.type != "int" else 0,
        "scale": f.scale,
        "nillable": f.nillable and f.type != "boolean",
        "createable": f.createable,
        "updateable": f.updateable,
        "externalId": f.external_id,
        "unique": f.unique,
        "idLookup": f.name == "Id" or f.external_id,
        "custom": f.name.endswith("__c"),
        "calculated": False,
        "autoNumber": False,
        "caseSensitive": False,
        "filterable": True,
        "sortable": f.type != "textarea",
        "groupable": f.type not in ("textarea", "double", "currency", "percent", "datetime"),
        "defaultedOnCreate": default is not None or f.system,
        "defaultValue": default,
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "relationshipOrder": f.relationship_order,
        "cascadeDelete": f.cascade_delete,
        "restrictedDelete": f.delete_rule is DeleteRule.RESTRICT,
        "writeRequiresMasterRead": False,
        "restrictedPicklist": f.type == "picklist",
        "picklistValues": [
            {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
            for v in f.picklist_values
        ],
    }


def describe_object(obj: ObjectDef, version: str) -> dict[str, Any]:
    """``GET /sobjects/{T}/describe``."""
    body = object_summary(obj, version)
    body["fields"] = [field_describe(f) for f in obj.fields.values()]
    body["childRelationships"] = [
        {
            "cascadeDelete": r.cascade_delete,
            "childSObject": r.child_object,
            "deprecatedAndHidden": False,
            "field": r.field,
            "junctionIdListNames": [],
            "junctionReferenceTo": [],
            "relationshipName": r.relationship_name,
            "restrictedDelete": r.restricted_delete,
        }
        for r in obj.child_relationships
    ]
    body["recordTypeInfos"] = []
    return body
