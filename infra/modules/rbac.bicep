// Data-plane role assignments. The app's identity gets what the host and the router need, each table
// role scoped to the one table (a role assignment's scope may be a single table:
// .../storageAccounts/<account>/tableServices/default/tables/<table>, "Assign an Azure role for access to
// table data", learn.microsoft.com/azure/storage/tables/assign-azure-role-data-access):
//   models                     Storage Table Data Reader: the app never writes its own routing;
//   callers                    Storage Table Data Reader: keys are made and revoked by `callers` (CLI);
//   costs, health, roll-ups    Storage Table Data Contributor.
// No table role on the account: that would include write on models (roles only add up). The deploying
// user (optional) gets account-wide data roles so the postprovision hook can write the catalogue and
// local runs and reports work with `az login` / `azd auth login`.
// Assignment names are guid(scope, principal, role): stable across re-deployments.

param storageAccountName string
param openAiAccountName string
param applicationInsightsName string

@description('The model catalogue table: the app may only read it.')
param modelsTableName string

@description('The callers table (router keys): the app may only read it.')
param callersTableName string

@description('Tables the app reads and writes (costs, health, cost roll-ups).')
param dataTableNames string[]

@description('Principal (object) id of the app\'s user-assigned identity.')
param appPrincipalId string

@description('Object id of the deploying user or group; empty = no user assignments.')
param userPrincipalId string = ''

@allowed(['User', 'Group', 'ServicePrincipal'])
param userPrincipalType string = 'User'

// Built-in role definition ids, from "Azure built-in roles" (learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataReader: '76199698-9eea-4c19-bc75-cec21354c6b6'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  cognitiveServicesOpenAIUser: '5e0bd9bd-7b93-4f28-af87-19fc36ad61bd'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// Blob: host state and the deployment package. Queue: host. Tables: per table, below.
var appAccountRoles = [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
]
// The deploying user writes the catalogue (postprovision hook) and may read every table.
var userAccountRoles = [
  roles.storageBlobDataOwner
  roles.storageQueueDataContributor
  roles.storageTableDataContributor
]

resource storage 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2025-01-01' existing = {
  parent: storage
  name: 'default'
}

resource modelsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-01-01' existing = {
  parent: tableService
  name: modelsTableName
}

resource callersTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-01-01' existing = {
  parent: tableService
  name: callersTableName
}

resource dataTables 'Microsoft.Storage/storageAccounts/tableServices/tables@2025-01-01' existing = [
  for tableName in dataTableNames: {
    parent: tableService
    name: tableName
  }
]

resource openAi 'Microsoft.CognitiveServices/accounts@2025-06-01' existing = {
  name: openAiAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource appStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in appAccountRoles: {
    name: guid(storage.id, appPrincipalId, role)
    scope: storage
    properties: {
      principalId: appPrincipalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    }
  }
]

resource appModelsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(modelsTable.id, appPrincipalId, roles.storageTableDataReader)
  scope: modelsTable
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataReader)
  }
}

resource appCallersReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(callersTable.id, appPrincipalId, roles.storageTableDataReader)
  scope: callersTable
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataReader)
  }
}

resource appDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (tableName, i) in dataTableNames: {
    name: guid(dataTables[i].id, appPrincipalId, roles.storageTableDataContributor)
    scope: dataTables[i]
    properties: {
      principalId: appPrincipalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    }
  }
]

resource appOpenAiRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(openAi.id, appPrincipalId, roles.cognitiveServicesOpenAIUser)
  scope: openAi
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAIUser)
  }
}

resource appMetricsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

resource userStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in userAccountRoles: if (!empty(userPrincipalId)) {
    name: guid(storage.id, userPrincipalId, role)
    scope: storage
    properties: {
      principalId: userPrincipalId
      principalType: userPrincipalType
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    }
  }
]

resource userOpenAiRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(openAi.id, userPrincipalId, roles.cognitiveServicesOpenAIUser)
  scope: openAi
  properties: {
    principalId: userPrincipalId
    principalType: userPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesOpenAIUser)
  }
}

resource userMetricsRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(applicationInsights.id, userPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    principalId: userPrincipalId
    principalType: userPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}
